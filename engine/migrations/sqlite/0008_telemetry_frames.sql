-- Telemetry as one row per device and device time, with the frame's values as one JSON
-- object, in place of one row per key. Every frame was 7 rows or so in the key's index, and
-- writing them was most of the engine's cost per frame.
CREATE TABLE telemetry_frames (
    device_id    TEXT    NOT NULL,
    ts           INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    frame_values TEXT    NOT NULL,
    PRIMARY KEY (device_id, ts)
) WITHOUT ROWID;

INSERT INTO telemetry_frames (device_id, ts, version, frame_values)
SELECT device_id, ts, MAX(version),
       json_group_object(key, CASE WHEN value_text IS NOT NULL THEN value_text ELSE value_number END)
FROM telemetry
GROUP BY device_id, ts;

DROP TABLE telemetry;
ALTER TABLE telemetry_frames RENAME TO telemetry;
