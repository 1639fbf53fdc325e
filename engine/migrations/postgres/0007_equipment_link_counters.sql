-- The linked device's counter values when it was linked, as a JSON object, and the engine
-- time of the link: the baseline of run-hour and cycle intervals until a task's next work
-- order.
ALTER TABLE equipment_records ADD COLUMN link_counters TEXT NOT NULL DEFAULT '{}';
ALTER TABLE equipment_records ADD COLUMN linked_at BIGINT;
