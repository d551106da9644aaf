-- Instance output, kept in the store so it survives a control plane restart and every control
-- plane sharing the database serves the same lines. The control plane prunes each environment
-- to the last hour and a byte budget as it ingests (`log_usage` keeps the bytes counted).
CREATE TABLE log_lines (
    id INTEGER PRIMARY KEY,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    stack TEXT NOT NULL,
    service TEXT NOT NULL,
    instance TEXT NOT NULL,
    stream TEXT NOT NULL,
    text TEXT NOT NULL,
    position INTEGER NOT NULL,
    bytes INTEGER NOT NULL
) STRICT;
-- Reading and pruning go by id (stored order); `since` finds its first line by time.
CREATE INDEX log_lines_environment ON log_lines (environment_id, id);
CREATE INDEX log_lines_at ON log_lines (environment_id, at);

-- The highest offset kept per instance and stream: a resent line at or below it is a duplicate.
CREATE TABLE log_offsets (
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    instance TEXT NOT NULL,
    stream TEXT NOT NULL,
    position INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (environment_id, instance, stream)
) STRICT;

CREATE TABLE log_usage (
    environment_id INTEGER PRIMARY KEY REFERENCES environments (id) ON DELETE CASCADE,
    bytes INTEGER NOT NULL
) STRICT;
