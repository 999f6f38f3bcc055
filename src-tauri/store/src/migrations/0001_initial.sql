-- Schema version 1: instances, the job journal, downloaded outputs and the event log.
-- Applied once, inside the migration transaction; never edit after release, add a new file.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE instances (
    id                   INTEGER PRIMARY KEY,
    name                 TEXT NOT NULL COLLATE NOCASE UNIQUE CHECK (length(trim(name)) > 0),
    base_url             TEXT NOT NULL,
    auth_kind            TEXT NOT NULL DEFAULT 'none'
                         CHECK (auth_kind IN ('none', 'bearer', 'basic', 'headers', 'query_token')),
    -- Non-secret settings and the keyring references of the secret slots; never a secret value.
    auth_json            TEXT NOT NULL DEFAULT '{}',
    accept_invalid_certs INTEGER NOT NULL DEFAULT 0 CHECK (accept_invalid_certs IN (0, 1)),
    enabled              INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    client_id            TEXT NOT NULL UNIQUE
                         DEFAULT ('comfy-monitor-' || lower(hex(randomblob(16)))),
    preview_fps_cap      INTEGER NOT NULL DEFAULT 15 CHECK (preview_fps_cap BETWEEN 0 AND 120),
    notify_json          TEXT NOT NULL DEFAULT '{}',
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    last_status          TEXT,
    last_connected       INTEGER
) STRICT;

CREATE TABLE jobs (
    id                  INTEGER PRIMARY KEY,
    instance_id         INTEGER NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    prompt_id           TEXT NOT NULL CHECK (length(prompt_id) > 0),
    origin              TEXT NOT NULL CHECK (origin IN ('self', 'other', 'anonymous')),
    -- Kept only for jobs this app queued, so that a lost one can be queued again.
    workflow_json       TEXT CHECK (workflow_json IS NULL OR origin = 'self'),
    number              REAL,
    queued_at           INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER,
    state               TEXT NOT NULL
                        CHECK (state IN ('pending', 'running', 'success', 'error', 'interrupted', 'deleted', 'lost')),
    error_json          TEXT,
    outputs_json        TEXT,
    node_durations_json TEXT,
    detail              TEXT,
    updated_at          INTEGER NOT NULL,
    UNIQUE (instance_id, prompt_id)
) STRICT;

-- A terminal state is final, whoever writes second (another process, a replay after a crash).
CREATE TRIGGER jobs_terminal_state_is_final
BEFORE UPDATE OF state ON jobs
WHEN OLD.state NOT IN ('pending', 'running') AND NEW.state IS NOT OLD.state
BEGIN
    SELECT RAISE(ABORT, 'a finished job keeps its final state');
END;

CREATE INDEX jobs_unfinished ON jobs (instance_id) WHERE state IN ('pending', 'running');
CREATE INDEX jobs_newest ON jobs (queued_at DESC, id DESC);
CREATE INDEX jobs_instance_newest ON jobs (instance_id, queued_at DESC, id DESC);
CREATE INDEX jobs_lost_own ON jobs (instance_id) WHERE state = 'lost' AND origin = 'self';

CREATE TABLE outputs (
    id         INTEGER PRIMARY KEY,
    job_id     INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    node_id    TEXT NOT NULL,
    filename   TEXT NOT NULL CHECK (length(filename) > 0),
    subfolder  TEXT NOT NULL DEFAULT '',
    kind       TEXT NOT NULL CHECK (kind IN ('output', 'temp', 'input')),
    local_path TEXT,
    thumbnail  BLOB,
    UNIQUE (job_id, node_id, filename, subfolder, kind)
) STRICT;

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    instance_id INTEGER REFERENCES instances (id) ON DELETE SET NULL,
    ts          INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (length(kind) > 0),
    detail      TEXT,
    data_json   TEXT
) STRICT;

CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_instance ON events (instance_id, id);
