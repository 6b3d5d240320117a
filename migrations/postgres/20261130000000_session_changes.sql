-- Every change of a session row is announced on the channel `leptos_oidc_sessions` (payload:
-- the session id), so that each instance forgets what it keeps in memory of that session
-- (src/session/changes.rs). Notifications are sent at commit, in commit order.
CREATE FUNCTION leptos_oidc_session_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('leptos_oidc_sessions', OLD.id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sessions_changed AFTER UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION leptos_oidc_session_changed();
