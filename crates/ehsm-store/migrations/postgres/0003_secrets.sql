-- The secrets manager (compatibility spec §10). A secret is owned by an app and named; its
-- values are versions 1, 2, ... of ciphertext under one CMK (the app's default secret key or the
-- one named at creation). Deleting a secret cascades to its versions in the same statement.

CREATE TABLE secrets (
    appid               TEXT COLLATE "C"   NOT NULL REFERENCES apps (appid),
    name                TEXT COLLATE "C"   NOT NULL,
    -- The CMK the values are encrypted under.
    keyid               TEXT     NOT NULL,
    description         TEXT,
    create_time         BIGINT   NOT NULL,
    -- Both set while a deletion is scheduled, both NULL otherwise.
    delete_time         BIGINT,
    planned_delete_time BIGINT,
    -- As the client gave it ("30d"). A rotation is a new version: the next one is due an
    -- interval after the newest version, so no date is stored.
    rotation_interval   TEXT,
    -- The newest version id; PutSecretValue increments it in the transaction that inserts the
    -- version, so concurrent writers get distinct ids.
    current_version     BIGINT   NOT NULL CHECK (current_version >= 1),
    PRIMARY KEY (appid, name),
    CHECK ((delete_time IS NULL) = (planned_delete_time IS NULL))
);

CREATE INDEX secrets_planned_delete_time ON secrets (planned_delete_time);

CREATE TABLE secret_versions (
    appid       TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    version_id  BIGINT NOT NULL CHECK (version_id >= 1),
    -- The value, as the core's ciphertext under the secret's CMK.
    ciphertext  BYTEA    NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (appid, name, version_id),
    FOREIGN KEY (appid, name) REFERENCES secrets (appid, name) ON DELETE CASCADE
);
