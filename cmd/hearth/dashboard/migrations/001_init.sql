-- Accounts, sessions, invitations, sites, certificate requests and the audit log.
-- Times are Unix seconds (UTC).

CREATE TABLE users (
	id            INTEGER PRIMARY KEY,
	email         TEXT    NOT NULL UNIQUE COLLATE NOCASE,
	org           TEXT    NOT NULL,
	role          TEXT    NOT NULL,
	password_hash TEXT    NOT NULL,  -- argon2id, PHC string with its parameters and salt
	created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
	id_hash    BLOB    PRIMARY KEY,  -- SHA-256 of the cookie's random 32 bytes
	user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	csrf       TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL
);

CREATE TABLE invitations (
	id         INTEGER PRIMARY KEY,
	token_hash BLOB    NOT NULL UNIQUE,  -- SHA-256 of the link's random token
	email      TEXT    NOT NULL COLLATE NOCASE,
	role       TEXT    NOT NULL,
	org        TEXT    NOT NULL,
	created_by INTEGER NOT NULL REFERENCES users(id),
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER
);

CREATE TABLE sites (
	id             INTEGER PRIMARY KEY,
	name           TEXT    NOT NULL UNIQUE COLLATE NOCASE,
	org            TEXT    NOT NULL,
	gpus           INTEGER NOT NULL DEFAULT 0,
	gpu_memory_gib INTEGER NOT NULL DEFAULT 0,
	aggregates     INTEGER NOT NULL DEFAULT 0,
	websocket      INTEGER NOT NULL DEFAULT 0,
	proxy          TEXT    NOT NULL DEFAULT '',
	created_by     INTEGER NOT NULL REFERENCES users(id),
	created_at     INTEGER NOT NULL
);

-- A certificate request: for a site (site_id) or for an account's own admin
-- certificate (user_id). status: pending, approved, refused.
CREATE TABLE requests (
	id          INTEGER PRIMARY KEY,
	name        TEXT    NOT NULL COLLATE NOCASE,
	org         TEXT    NOT NULL,
	kind        TEXT    NOT NULL,
	role        TEXT    NOT NULL DEFAULT '',
	site_id     INTEGER REFERENCES sites(id),
	user_id     INTEGER REFERENCES users(id),
	uploaded_by INTEGER NOT NULL REFERENCES users(id),
	csr_pem     TEXT    NOT NULL,
	status      TEXT    NOT NULL,
	uploaded_at INTEGER NOT NULL,
	decided_by  INTEGER REFERENCES users(id),
	decided_at  INTEGER,
	revoked_at  INTEGER,
	CHECK ((site_id IS NULL) <> (user_id IS NULL))
);

-- Every change, hash-chained: hash = SHA-256 over the previous row's hash
-- and this row's fields (see audit.go).
CREATE TABLE audit (
	seq       INTEGER PRIMARY KEY,
	at        INTEGER NOT NULL,
	actor     TEXT    NOT NULL,
	action    TEXT    NOT NULL,
	target    TEXT    NOT NULL,
	detail    TEXT    NOT NULL,
	prev_hash TEXT    NOT NULL,
	hash      TEXT    NOT NULL
);

-- Certificates revoked from the dashboard (provision.Revoke keeps the CRL).
CREATE TABLE revoked (
	name       TEXT    PRIMARY KEY COLLATE NOCASE,
	revoked_by INTEGER NOT NULL REFERENCES users(id),
	revoked_at INTEGER NOT NULL
);
