-- Sessions, when they are kept in this database (the default; SESSION_STORE=redis keeps them in
-- Redis): the session's data as JSON, its end (Unix seconds), and whose it is, so that a
-- back-channel logout or "sign out everywhere" ends them with one statement. A session that
-- has been ended is never written back: saving is an UPDATE of a row that must still exist.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    data         TEXT NOT NULL,
    expires_at   BIGINT NOT NULL,
    issuer       TEXT,
    subject      TEXT,
    provider_sid TEXT
);
CREATE INDEX sessions_by_subject ON sessions (issuer, subject);
CREATE INDEX sessions_by_sid ON sessions (issuer, provider_sid);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- Replaced by the columns above.
DROP TABLE session_owners;
DROP SCHEMA IF EXISTS tower_sessions CASCADE; -- the sessions of tower-sessions' SQLx store, used before this table
