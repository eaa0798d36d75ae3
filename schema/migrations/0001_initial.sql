-- Recording vault: initial schema.
--
-- The server keeps metadata only. Recording ciphertext lives in the blob directory;
-- case secrets exist here only as envelopes (age ciphertext to one person); nothing in
-- this database can decrypt a recording.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE users (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'investigator', 'auditor', 'recorder')),
    recipient  TEXT NOT NULL UNIQUE,
    enabled    INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at TEXT NOT NULL,
    created_by TEXT REFERENCES users(name)
) STRICT;

CREATE TABLE cases (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('customer', 'employee', 'covert')),
    title          TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending-approval', 'open', 'closed', 'destroyed')),
    retention_days INTEGER NOT NULL CHECK (retention_days > 0),
    basis          TEXT NOT NULL,            -- JSON of the kind's legal fields
    key_version    INTEGER NOT NULL DEFAULT 1,
    ap_ref         TEXT,                     -- covert: AP prior-check approval reference
    ap_date        TEXT,
    created_by     TEXT NOT NULL REFERENCES users(name),
    created_at     TEXT NOT NULL
) STRICT;

-- One row per key version of a case: the recipient recorders encrypt to.
CREATE TABLE case_keys (
    case_id    TEXT NOT NULL REFERENCES cases(id),
    version    INTEGER NOT NULL,
    recipient  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (case_id, version)
) STRICT;

-- Admins who hold the case secret and may wrap it to grantees.
CREATE TABLE custodians (
    case_id TEXT NOT NULL REFERENCES cases(id),
    admin   TEXT NOT NULL REFERENCES users(name),
    PRIMARY KEY (case_id, admin)
) STRICT;

-- The case secret of one key version, age-encrypted to one person.
CREATE TABLE envelopes (
    case_id  TEXT NOT NULL,
    version  INTEGER NOT NULL,
    holder   TEXT NOT NULL REFERENCES users(name),
    envelope BLOB NOT NULL,
    PRIMARY KEY (case_id, version, holder),
    FOREIGN KEY (case_id, version) REFERENCES case_keys(case_id, version)
) STRICT;

CREATE TABLE grants (
    case_id     TEXT NOT NULL REFERENCES cases(id),
    grantee     TEXT NOT NULL REFERENCES users(name),
    status      TEXT NOT NULL CHECK (status IN ('pending', 'active', 'revoked')),
    reason      TEXT NOT NULL,
    until       TEXT,                        -- last day the grant is valid (YYYY-MM-DD)
    granted_by  TEXT NOT NULL REFERENCES users(name),
    approved_by TEXT REFERENCES users(name),
    created_at  TEXT NOT NULL,
    revoked_at  TEXT,
    PRIMARY KEY (case_id, grantee)
) STRICT;
CREATE INDEX grants_by_grantee ON grants (grantee);

CREATE TABLE recordings (
    id          TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL REFERENCES cases(id),
    key_version INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    announced   TEXT NOT NULL CHECK (announced IN ('spoken-notice', 'signal-tone', 'none')),
    recorded_at TEXT NOT NULL,
    uploaded_by TEXT NOT NULL REFERENCES users(name),
    uploaded_at TEXT NOT NULL,
    meta        BLOB                         -- age ciphertext of the call metadata
) STRICT;
CREATE INDEX recordings_by_case ON recordings (case_id, uploaded_at, id);

-- The access log: append-only, hash-chained (see LOG-FORMAT.md).
CREATE TABLE access_log (
    seq          INTEGER PRIMARY KEY CHECK (seq >= 0),
    time_ms      INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    case_id      TEXT NOT NULL,
    recording_id TEXT NOT NULL,
    reason       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    details      TEXT NOT NULL,
    prev         BLOB NOT NULL CHECK (length(prev) = 32),
    hash         BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;
CREATE INDEX access_log_by_case ON access_log (case_id) WHERE case_id <> '';

CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log
BEGIN
    SELECT RAISE(ABORT, 'the access log is append-only');
END;

CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log
BEGIN
    SELECT RAISE(ABORT, 'the access log is append-only');
END;
