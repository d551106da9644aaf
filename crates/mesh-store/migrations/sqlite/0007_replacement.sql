-- A rack's server being replaced by a new one (`mesh rack upgrade` / `mesh rack resize`): at
-- most one at a time per rack. The row goes when the replacement is done or undone.
CREATE TABLE rack_replacements (
    rack_id INTEGER PRIMARY KEY REFERENCES racks (id) ON DELETE CASCADE,
    old_server TEXT NOT NULL,
    new_server TEXT NOT NULL,
    size TEXT NOT NULL,
    version TEXT NOT NULL,
    phase TEXT NOT NULL,
    since INTEGER NOT NULL,
    phase_since INTEGER NOT NULL,
    drain_grace_ms INTEGER NOT NULL,
    timeout_ms INTEGER NOT NULL,
    message TEXT
) STRICT;

-- Racks: the salt of the instance ids of the rack's server when that server replaced another
-- (NULL for a rack's first server), kept so its instances keep their ids once it is alone.
ALTER TABLE racks ADD COLUMN instance_salt TEXT;
