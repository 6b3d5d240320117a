-- Keys the app makes for itself at its first start, shared by every instance on this database:
-- `pending_sign_ins` seals the cookies of sign-ins waiting for the provider (base64url).
CREATE TABLE app_keys (
    name TEXT PRIMARY KEY,
    key  TEXT NOT NULL
);
