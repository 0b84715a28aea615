-- Certificate request ids are never reused: the table is rebuilt with
-- AUTOINCREMENT (SQLite otherwise hands a deleted newest row's id to the
-- next insert), and a pending request that a new upload replaces is kept
-- with status 'replaced' instead of being deleted. An approval names the
-- request's id and its key's digest, so a form shown before a re-upload
-- can only be refused, never applied to the new request.

CREATE TABLE requests_new (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	name        TEXT    NOT NULL COLLATE NOCASE,
	org         TEXT    NOT NULL,
	kind        TEXT    NOT NULL,
	role        TEXT    NOT NULL DEFAULT '',
	site_id     INTEGER REFERENCES sites(id),
	user_id     INTEGER REFERENCES users(id),
	uploaded_by INTEGER NOT NULL REFERENCES users(id),
	csr_pem     TEXT    NOT NULL,
	status      TEXT    NOT NULL,  -- pending, approved, refused, replaced
	uploaded_at INTEGER NOT NULL,
	decided_by  INTEGER REFERENCES users(id),
	decided_at  INTEGER,
	revoked_at  INTEGER,
	CHECK ((site_id IS NULL) <> (user_id IS NULL))
);

INSERT INTO requests_new (id, name, org, kind, role, site_id, user_id, uploaded_by, csr_pem, status, uploaded_at, decided_by, decided_at, revoked_at)
	SELECT id, name, org, kind, role, site_id, user_id, uploaded_by, csr_pem, status, uploaded_at, decided_by, decided_at, revoked_at FROM requests;

DROP TABLE requests;
ALTER TABLE requests_new RENAME TO requests;
