-- Schema version 4: what timing is learned from. A finished job keeps its workflow's timing
-- fingerprint (its graph and the inputs that change its cost) and how long it ran, queue wait
-- excluded, so the estimates of later jobs are rebuilt from the journal at start. Rows written
-- before this version have neither; jobs this app queued are fingerprinted again from their
-- stored workflow. Forward-only; never edit after release, add a new file.

ALTER TABLE jobs ADD COLUMN fingerprint TEXT;
ALTER TABLE jobs ADD COLUMN run_ms INTEGER CHECK (run_ms IS NULL OR run_ms >= 0);
CREATE INDEX jobs_succeeded ON jobs (instance_id, finished_at) WHERE state = 'success';
