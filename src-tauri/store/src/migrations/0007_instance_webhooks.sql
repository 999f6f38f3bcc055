-- Schema version 7: a webhook per instance, for `comfy-monitor serve`: where its events are
-- posted besides the targets given on the command line. `target` is the address as the user
-- gave it (`https://…`, or `ntfy+https://…` for ntfy's plain text); comfy-app checks it before
-- it is saved. The secret signing it is never stored here. Forward-only; never edit after
-- release, add a new file.

CREATE TABLE instance_webhooks (
    instance_id INTEGER PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
    target      TEXT NOT NULL CHECK (length(target) > 0)
);
