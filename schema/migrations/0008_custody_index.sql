-- A recording's custody (its evidence bundle) is every log entry about it: found by
-- index, not by reading the whole log.
CREATE INDEX access_log_by_recording ON access_log (recording_id) WHERE recording_id <> '';
