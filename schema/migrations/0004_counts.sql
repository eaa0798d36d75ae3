-- Recordings per case as a counter kept by triggers, so that `case show`, `case list`
-- and the compliance report do not count a million rows each time.

ALTER TABLE cases ADD COLUMN recording_count INTEGER NOT NULL DEFAULT 0 CHECK (recording_count >= 0);
UPDATE cases SET recording_count = (SELECT count(*) FROM recordings r WHERE r.case_id = cases.id);

CREATE TRIGGER recordings_count_insert AFTER INSERT ON recordings
BEGIN
    UPDATE cases SET recording_count = recording_count + 1 WHERE id = NEW.case_id;
END;

CREATE TRIGGER recordings_count_delete AFTER DELETE ON recordings
BEGIN
    UPDATE cases SET recording_count = recording_count - 1 WHERE id = OLD.case_id;
END;
