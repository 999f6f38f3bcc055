-- Schema version 6: outputs saved without asking. Per instance, the folder they are saved to
-- (NULL: not saved) and whether other clients' jobs are saved too. Per output, whether it is
-- to be kept: 'pending' until a copy is in the folder ('kept') or saving it failed for good
-- ('failed', with the reason); NULL for files that are not saved (temporary previews, an
-- instance that does not save). `keep_tries` counts the failed attempts of a pending file, so
-- a file that cannot be fetched is given up after a few. Rows written before this version are
-- not saved (they are history; only jobs that end from now on are). Forward-only; never edit
-- after release, add a new file.

ALTER TABLE instances ADD COLUMN save_dir TEXT CHECK (save_dir IS NULL OR length(save_dir) > 0);
ALTER TABLE instances ADD COLUMN save_others INTEGER NOT NULL DEFAULT 0
    CHECK (save_others IN (0, 1));

ALTER TABLE outputs ADD COLUMN keep TEXT CHECK (keep IS NULL OR keep IN ('pending', 'kept', 'failed'));
ALTER TABLE outputs ADD COLUMN keep_error TEXT;
ALTER TABLE outputs ADD COLUMN keep_tries INTEGER NOT NULL DEFAULT 0 CHECK (keep_tries >= 0);
CREATE INDEX outputs_to_keep ON outputs (id) WHERE keep = 'pending';

-- What a job was, to find it again in the gallery: its name (a file name, or the checkpoint and
-- the first words of its prompt) and the text a search looks through (the name, the models,
-- the prompt text). Filled when the graph is known: at submit for this app's jobs, from the
-- server for others'.
ALTER TABLE jobs ADD COLUMN label TEXT;
ALTER TABLE jobs ADD COLUMN search_text TEXT;
