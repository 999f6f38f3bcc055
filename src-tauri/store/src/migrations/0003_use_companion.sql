-- Schema version 3: whether the monitor uses the server's comfy-monitor companion (relayed
-- traffic of every client's jobs) when the server has it. On by default, so instances saved
-- by an older version keep the behaviour a new one gets. Forward-only; never edit after
-- release, add a new file.

ALTER TABLE instances ADD COLUMN use_companion INTEGER NOT NULL DEFAULT 1
    CHECK (use_companion IN (0, 1));
