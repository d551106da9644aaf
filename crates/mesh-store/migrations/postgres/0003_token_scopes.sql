-- Scoped tokens: developer and viewer tokens name the environments they reach, and any token
-- may expire. Existing tokens keep their role and never expire.
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;

CREATE TABLE token_environments (
    token_id BIGINT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    environment_id BIGINT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    PRIMARY KEY (token_id, environment_id)
);
CREATE INDEX token_environments_environment ON token_environments (environment_id);
