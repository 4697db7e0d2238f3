-- ehsm-store schema, SQLite dialect. Keep in step with ../postgres/0001_initial.sql: the two
-- files differ only in BLOB vs BYTEA and in the PostgreSQL-only COLLATE "C" on cmks.keyid
-- (SQLite's default BINARY collation already orders by bytes).
-- Times are milliseconds since the Unix epoch; flags are BIGINT 0/1 so that one code path
-- binds and reads them the same way on both backends.

CREATE TABLE apps (
    appid       TEXT   NOT NULL PRIMARY KEY,
    apikey_blob BLOB   NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE cmks (
    keyid                TEXT   NOT NULL PRIMARY KEY,
    appid                TEXT   NOT NULL REFERENCES apps (appid),
    keyspec              TEXT   NOT NULL,
    origin               TEXT   NOT NULL,
    keyusage             TEXT   NOT NULL,
    version              BIGINT NOT NULL CHECK (version BETWEEN 0 AND 4294967295),
    state                BIGINT NOT NULL CHECK (state IN (0, 1)),
    creation_date        BIGINT NOT NULL,
    expire_time          BIGINT NOT NULL,
    alias                TEXT   NOT NULL,
    key_blob             BLOB   NOT NULL,
    listed               BIGINT NOT NULL CHECK (listed IN (0, 1)),
    import_wrapping_spec TEXT,
    import_wrapping_blob BLOB,
    import_expires_at    BIGINT,
    CHECK (
        (import_wrapping_spec IS NULL AND import_wrapping_blob IS NULL AND import_expires_at IS NULL)
        OR (import_wrapping_spec IS NOT NULL AND import_wrapping_blob IS NOT NULL AND import_expires_at IS NOT NULL)
    )
);

CREATE INDEX cmks_appid_keyid ON cmks (appid, keyid);

CREATE TABLE replay_cache (
    appid         TEXT   NOT NULL,
    req_timestamp TEXT   NOT NULL,
    nonce         TEXT   NOT NULL,
    seen_at       BIGINT NOT NULL,
    PRIMARY KEY (appid, req_timestamp, nonce)
);

CREATE INDEX replay_cache_seen_at ON replay_cache (seen_at);

CREATE TABLE settings (
    name  TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
);
