-- Job leases: a background job (the re-wrap after a domain-key rotation, the deletion jobs) runs
-- on one KMS node at a time among the nodes sharing this database. A lease is taken, renewed and
-- taken over from an expired holder by one conditional upsert, so of concurrent takers exactly
-- one wins. A lease whose holder died simply expires: nothing needs to clean it up.

CREATE TABLE job_leases (
    name       TEXT   NOT NULL PRIMARY KEY,
    -- The holding node's per-process random id.
    holder     TEXT   NOT NULL,
    -- Milliseconds since the Unix epoch; at or after this time anyone may take the lease.
    expires_at BIGINT NOT NULL
);
