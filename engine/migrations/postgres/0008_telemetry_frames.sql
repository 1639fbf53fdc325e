-- Telemetry as one row per device and device time, with the frame's values as one JSON
-- object, in place of one row per key. Every frame was 7 rows or so in the key's index, and
-- writing them was most of the engine's cost per frame.
CREATE TABLE telemetry_frames (
    device_id    TEXT   NOT NULL,
    ts           BIGINT NOT NULL,
    version      BIGINT NOT NULL,
    frame_values JSONB  NOT NULL,
    CONSTRAINT telemetry_frames_key PRIMARY KEY (device_id, ts)
);

INSERT INTO telemetry_frames (device_id, ts, version, frame_values)
SELECT device_id, ts, MAX(version),
       jsonb_object_agg(key, COALESCE(to_jsonb(value_text), to_jsonb(value_number)))
FROM telemetry
GROUP BY device_id, ts;

DROP TABLE telemetry;
ALTER TABLE telemetry_frames RENAME TO telemetry;
