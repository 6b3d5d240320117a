-- Every change of a session row, so that each instance forgets what it keeps in memory of that
-- session (src/session/changes.rs reads this log about every tenth of a second). A row is kept
-- for a minute (`expires_at`, Unix seconds), long enough for every instance to have read it.
CREATE TABLE session_changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TRIGGER sessions_updated AFTER UPDATE ON sessions BEGIN
    INSERT INTO session_changes (id, expires_at) VALUES (OLD.id, unixepoch() + 60);
END;

CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions BEGIN
    INSERT INTO session_changes (id, expires_at) VALUES (OLD.id, unixepoch() + 60);
END;
