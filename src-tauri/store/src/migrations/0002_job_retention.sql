-- Schema version 2: an index for pruning the job journal (finished jobs of an instance by
-- finish time; the row id breaks ties). Forward-only; never edit after release, add a new file.

CREATE INDEX jobs_finished ON jobs (instance_id, finished_at)
    WHERE state NOT IN ('pending', 'running');
