-- Console logins (issue 19): one row per session, ended by logout, expiry or a new operator
-- token. Only the SHA-256 of the session id (the cookie) and an HMAC of the token keyed with
-- that id are kept. Bounded: a login removes expired sessions and the oldest beyond 1,000.
CREATE TABLE console_sessions (
    id_sha256     text PRIMARY KEY,
    token_binding text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_created ON console_sessions (created_at);
