-- Counter values of the linked device when it was linked, as a JSON object: the baseline of
-- run-hour and cycle intervals until the first work order of a task.
ALTER TABLE equipment_records ADD COLUMN link_counters TEXT NOT NULL DEFAULT '{}';
