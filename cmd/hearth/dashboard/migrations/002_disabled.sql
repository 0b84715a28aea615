-- An account whose certificate was revoked is disabled: it cannot sign in
-- and its sessions are gone.
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
