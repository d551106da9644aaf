-- Racks an environment is leaving (`mesh env update --rack` without them): each keeps serving
-- until the remaining racks are healthy, then forwards the environment's hosts to them for its
-- drain grace, then the row goes. A rack cannot be deleted while an environment leaves it.
CREATE TABLE environment_leaving_racks (
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    rack_id INTEGER NOT NULL REFERENCES racks (id) ON DELETE RESTRICT,
    since INTEGER NOT NULL,
    drain_grace_ms INTEGER NOT NULL,
    forwarding_since INTEGER,
    PRIMARY KEY (environment_id, rack_id)
) STRICT;
CREATE INDEX environment_leaving_racks_rack ON environment_leaving_racks (rack_id);

-- Servers: where each server's edge router takes plain HTTP (NULL: it runs none, or its agent
-- registered before agents reported it).
ALTER TABLE servers ADD COLUMN router TEXT;

-- Log lines: the rack whose agent shipped the line (NULL for lines stored before).
ALTER TABLE log_lines ADD COLUMN rack TEXT;
