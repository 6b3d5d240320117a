-- People who have signed in, one row per identity: a provider (issuer) and its subject.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    email         TEXT,
    name          TEXT,
    -- The ID token and userinfo claims of the last sign-in, as a JSON object.
    claims        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER NOT NULL,
    login_count   INTEGER NOT NULL DEFAULT 1,
    UNIQUE (issuer, subject)
);
