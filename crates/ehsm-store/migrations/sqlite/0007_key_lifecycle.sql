-- Key lifecycle (issue 13): versions, rotation, aliases, scheduled deletion.
-- Keep in step with the other dialect's 0007 (they differ in BLOB and COLLATE "C" only).

-- Every version of a key is its own blob, bound to its number (the blob's AAD holds it).
-- Versions are 1, 2, ... with no gap: rotation adds the next one, nothing removes one, and
-- cmks.primary_version names the one new ciphertexts and signatures use.
CREATE TABLE cmk_versions (
    keyid         TEXT   NOT NULL REFERENCES cmks (keyid) ON DELETE CASCADE,
    version       BIGINT NOT NULL CHECK (version BETWEEN 1 AND 4294967295),
    key_blob      BLOB   NOT NULL,
    creation_date BIGINT NOT NULL,
    PRIMARY KEY (keyid, version)
);

-- Before this migration a key had one version, cmks.version (always 1), with its blob in the
-- row itself.
INSERT INTO cmk_versions (keyid, version, key_blob, creation_date)
    SELECT keyid, version, key_blob, creation_date FROM cmks;
ALTER TABLE cmks DROP COLUMN key_blob;
ALTER TABLE cmks RENAME COLUMN version TO primary_version;
-- Upstream's alias column was always ''; a key's aliases are rows of the aliases table now.
ALTER TABLE cmks DROP COLUMN alias;

ALTER TABLE cmks ADD COLUMN description TEXT;
-- Automatic rotation: the interval is kept while rotation is off (so turning it back on needs
-- no interval); next_rotation is set exactly while it is on.
ALTER TABLE cmks ADD COLUMN rotation_interval_days BIGINT
    CHECK (rotation_interval_days BETWEEN 1 AND 100000);
ALTER TABLE cmks ADD COLUMN next_rotation BIGINT;
-- Set while a deletion is scheduled (the key is then disabled too).
ALTER TABLE cmks ADD COLUMN deletion_date BIGINT;
CREATE INDEX cmks_next_rotation ON cmks (next_rotation);
CREATE INDEX cmks_deletion_date ON cmks (deletion_date);

-- An alias names one key of its app; names are unique per app, and another app's aliases are
-- invisible. Deleting the key deletes its aliases.
CREATE TABLE aliases (
    appid      TEXT   NOT NULL REFERENCES apps (appid),
    alias      TEXT   NOT NULL,
    keyid      TEXT   NOT NULL REFERENCES cmks (keyid) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (appid, alias)
);
CREATE INDEX aliases_appid_keyid ON aliases (appid, keyid);
