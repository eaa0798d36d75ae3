-- Reopening a covert case closed with outcome `offence` while it is on legal hold (R7,
-- issue 14): one admin requests it, a second admin approves (four eyes), and only then is
-- the case open again (still on legal hold, until an admin releases it). One row per
-- request; the approval fills in who approved it and the closing it undid, which the
-- case row forgets when it opens again.

CREATE TABLE reopenings (
    case_id        TEXT NOT NULL REFERENCES cases(id),
    requested_by   TEXT NOT NULL REFERENCES users(name),
    requested_at   TEXT NOT NULL,
    reason         TEXT NOT NULL,
    approved_by    TEXT REFERENCES users(name),
    approved_at    TEXT,
    -- The closing the approval undid.
    closed_outcome TEXT CHECK (closed_outcome IN ('offence', 'no-offence', 'completed')),
    closed_at      TEXT,
    closed_by      TEXT REFERENCES users(name),
    CHECK ((approved_by IS NULL) = (approved_at IS NULL)),
    -- Four eyes, kept by the database too: nobody approves their own request.
    CHECK (approved_by IS NULL OR approved_by <> requested_by)
) STRICT;

-- At most one request per case waits for its approval.
CREATE UNIQUE INDEX reopenings_pending ON reopenings (case_id) WHERE approved_at IS NULL;
CREATE INDEX reopenings_by_case ON reopenings (case_id, requested_at);
