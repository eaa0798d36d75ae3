-- The legal lifecycle of a case (SPEC §2, R3-R7): closing with an outcome, destruction,
-- legal hold, the duty to tell the employee, and retention purges.

ALTER TABLE cases ADD COLUMN outcome TEXT CHECK (outcome IN ('offence', 'no-offence', 'completed'));
ALTER TABLE cases ADD COLUMN closed_at TEXT;
ALTER TABLE cases ADD COLUMN closed_by TEXT REFERENCES users(name);
-- A covert case closed with outcome `offence` keeps everything until the hold is released.
ALTER TABLE cases ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0 CHECK (legal_hold IN (0, 1));
ALTER TABLE cases ADD COLUMN hold_released_at TEXT;
ALTER TABLE cases ADD COLUMN hold_released_by TEXT REFERENCES users(name);

-- What was destroyed, for the destruction certificate. The row is written in the same
-- transaction that removes the recording; the blob file is deleted after the commit, and
-- any blob still marked here at start-up is deleted then (crash safety).
CREATE TABLE destroyed_recordings (
    recording_id TEXT PRIMARY KEY,
    case_id      TEXT NOT NULL REFERENCES cases(id),
    sha256       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    key_version  INTEGER NOT NULL,
    recorded_at  TEXT NOT NULL,
    destroyed_at TEXT NOT NULL,
    destroyed_by TEXT NOT NULL,
    cause        TEXT NOT NULL CHECK (cause IN ('no-offence', 'retention')),
    blob_deleted INTEGER NOT NULL DEFAULT 0 CHECK (blob_deleted IN (0, 1))
) STRICT;
CREATE INDEX destroyed_by_case ON destroyed_recordings (case_id);
CREATE INDEX destroyed_pending_blob ON destroyed_recordings (blob_deleted) WHERE blob_deleted = 0;

-- The duty to tell an employee about covert recording afterwards (R6).
CREATE TABLE notifications (
    case_id        TEXT PRIMARY KEY REFERENCES cases(id),
    created_at     TEXT NOT NULL,
    due            TEXT NOT NULL,          -- date by which the employee should be told
    told_on        TEXT,
    how            TEXT,
    recorded_by    TEXT REFERENCES users(name),
    deferred_until TEXT,
    defer_reason   TEXT
) STRICT;

CREATE INDEX recordings_by_recorded_at ON recordings (recorded_at);
