-- The first schema. Kept in step with ../postgres/0001_init.sql: same tables, columns, keys and
-- indexes; only the column types differ. STRICT makes SQLite refuse a value of the wrong type,
-- as PostgreSQL would, so a binding mistake fails here too instead of only in production.

CREATE TABLE providers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE provider_secrets (
    provider_id INTEGER NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (provider_id, key)
) STRICT;

CREATE TABLE racks (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    provider_id INTEGER NOT NULL REFERENCES providers (id) ON DELETE RESTRICT,
    region TEXT NOT NULL,
    size TEXT NOT NULL,
    domain TEXT NOT NULL,
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX racks_provider ON racks (provider_id);

CREATE TABLE servers (
    id INTEGER PRIMARY KEY,
    rack_id INTEGER NOT NULL REFERENCES racks (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    cpus REAL NOT NULL,
    memory_mb INTEGER NOT NULL,
    state TEXT NOT NULL,
    last_heartbeat INTEGER,
    created_at INTEGER NOT NULL,
    UNIQUE (rack_id, name)
) STRICT;

CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    rack_id INTEGER REFERENCES racks (id) ON DELETE CASCADE,
    hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT;
CREATE INDEX tokens_rack ON tokens (rack_id);

CREATE TABLE environments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE environment_racks (
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    rack_id INTEGER NOT NULL REFERENCES racks (id) ON DELETE RESTRICT,
    position INTEGER NOT NULL,
    PRIMARY KEY (environment_id, rack_id),
    UNIQUE (environment_id, position)
) STRICT;
CREATE INDEX environment_racks_rack ON environment_racks (rack_id);

CREATE TABLE stacks (
    id INTEGER PRIMARY KEY,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    formula TEXT NOT NULL,
    release_command TEXT,
    builder TEXT,
    image TEXT,
    buildpacks TEXT NOT NULL DEFAULT '[]',
    current_version INTEGER,
    next_version INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (environment_id, name)
) STRICT;

CREATE TABLE services (
    id INTEGER PRIMARY KEY,
    stack_id INTEGER NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    command TEXT,
    schedule TEXT,
    port INTEGER NOT NULL,
    instances INTEGER NOT NULL,
    size TEXT NOT NULL,
    health_path TEXT,
    health_grace_s INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (stack_id, name)
) STRICT;

CREATE TABLE config_vars (
    id INTEGER PRIMARY KEY,
    stack_id INTEGER NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    service_id INTEGER REFERENCES services (id) ON DELETE CASCADE,
    region TEXT,
    rack TEXT,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
-- NULLs are distinct in unique indexes, so the optional scope parts are compared as 0 and ''.
CREATE UNIQUE INDEX config_vars_scope_key
    ON config_vars (stack_id, COALESCE(service_id, 0), COALESCE(region, ''), COALESCE(rack, ''), key);
CREATE INDEX config_vars_service ON config_vars (service_id);

CREATE TABLE endpoints (
    id INTEGER PRIMARY KEY,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    domain TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    rack_id INTEGER REFERENCES racks (id) ON DELETE CASCADE,
    https_redirect INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX endpoints_environment ON endpoints (environment_id);
CREATE INDEX endpoints_rack ON endpoints (rack_id);

CREATE TABLE routes (
    id INTEGER PRIMARY KEY,
    endpoint_id INTEGER NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    path TEXT NOT NULL,
    service_id INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    UNIQUE (endpoint_id, path)
) STRICT;
CREATE INDEX routes_service ON routes (service_id);

CREATE TABLE certificates (
    id INTEGER PRIMARY KEY,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    domains TEXT NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    issuer TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    chain_pem TEXT NOT NULL,
    key_sealed BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (environment_id, fingerprint)
) STRICT;

CREATE TABLE deployments (
    id INTEGER PRIMARY KEY,
    stack_id INTEGER NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    formula TEXT NOT NULL,
    source_digest TEXT,
    message TEXT,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    description TEXT NOT NULL DEFAULT '',
    image TEXT,
    processes TEXT NOT NULL DEFAULT '{}',
    release_command TEXT,
    steps TEXT NOT NULL DEFAULT '[]',
    UNIQUE (stack_id, version)
) STRICT;

CREATE TABLE deployment_log_chunks (
    id INTEGER PRIMARY KEY,
    deployment_id INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    text TEXT NOT NULL
) STRICT;
CREATE INDEX deployment_log_chunks_deployment ON deployment_log_chunks (deployment_id, id);

CREATE TABLE instances (
    id INTEGER PRIMARY KEY,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    instance_id TEXT NOT NULL,
    service_id INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    deployment INTEGER,
    server TEXT,
    state TEXT NOT NULL,
    address TEXT,
    restarts INTEGER NOT NULL,
    exit_code INTEGER,
    message TEXT,
    started_at INTEGER,
    updated_at INTEGER NOT NULL,
    UNIQUE (environment_id, instance_id)
) STRICT;
CREATE INDEX instances_service ON instances (service_id);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
) STRICT;
