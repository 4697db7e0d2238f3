-- Quote policies (compatibility spec §9.2): an (MRENCLAVE, MRSIGNER) pair an app uploads and
-- names in VerifyQuote. Owned by one app: another app's policy id finds nothing.

CREATE TABLE quote_policies (
    appid       TEXT COLLATE "C" NOT NULL REFERENCES apps (appid),
    policy_id   TEXT COLLATE "C" NOT NULL,
    -- Lower-case hex, 64 characters, as the quote's measurements are compared.
    mr_enclave  TEXT   NOT NULL,
    mr_signer   TEXT   NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (appid, policy_id)
);
