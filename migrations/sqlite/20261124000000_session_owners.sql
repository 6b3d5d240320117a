-- What the app shares between its instances when sessions are kept in this database (with
-- SESSION_STORE=redis, Redis keeps the same things). Times are Unix seconds; rows past
-- `expires_at` are deleted every minute.

-- Whose each session is, so that a back-channel logout (by the provider's `sid` or by subject)
-- and "sign out everywhere" can end every session they name.
CREATE TABLE session_owners (
    session_id   TEXT PRIMARY KEY,
    issuer       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    provider_sid TEXT,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX session_owners_by_subject ON session_owners (issuer, subject);
CREATE INDEX session_owners_by_sid ON session_owners (issuer, provider_sid);

-- Logout tokens already used: each works once within its lifetime.
CREATE TABLE logout_tokens (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);

-- Token refreshes under way or just done, by a hash of the refresh token they use: one
-- refresh per session at a time, whichever instance the requests reach. `result` is NULL
-- while the refresh runs.
CREATE TABLE token_refreshes (
    token_hash TEXT PRIMARY KEY,
    result     TEXT,
    expires_at BIGINT NOT NULL
);
