-- Indexes for large vaults (a million recordings and more): paging a case's recordings
-- in upload order (rowid), and finding recordings past their retention per case.

DROP INDEX recordings_by_case;
DROP INDEX recordings_by_recorded_at;
CREATE INDEX recordings_by_case ON recordings (case_id);
CREATE INDEX recordings_by_case_recorded_at ON recordings (case_id, recorded_at);
