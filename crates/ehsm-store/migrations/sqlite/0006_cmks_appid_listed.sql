-- Per-app key quotas (`--max-keys-per-app`): every CreateKey counts the app's listed keys while
-- it holds the app's lock (src/guards.rs). With this index the count reads the index alone:
-- 0.5 ms instead of 6.6 ms for an app of 10 000 keys on SQLite, so the creates of a full app
-- do not slow every other writer down.
CREATE INDEX cmks_appid_listed ON cmks (appid, listed);
