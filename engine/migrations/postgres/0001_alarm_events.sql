-- Every alarm transition, in the order the engine made them.
CREATE TABLE alarm_events (
    id          BIGSERIAL PRIMARY KEY,
    alarm_id    TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    rule_id     TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    transition  TEXT    NOT NULL CHECK (transition IN ('raised', 'cleared', 'escalated', 'flapping', 'settled',
                                                    'acknowledged', 'shelved', 'unshelved')),
    key         TEXT,
    value       TEXT,
    message     TEXT    NOT NULL,
    raised_at   BIGINT  NOT NULL,
    cleared_at  BIGINT,
    frame_ts    BIGINT,
    cleared_frame_ts BIGINT,
    rule_version TEXT NOT NULL DEFAULT '',
    inputs      TEXT    NOT NULL DEFAULT '[]',
    flapping    BIGINT  NOT NULL DEFAULT 0,
    operator    TEXT,
    shelved_until BIGINT,
    recorded_at BIGINT  NOT NULL
);

CREATE INDEX alarm_events_device ON alarm_events (device_id, id);
CREATE INDEX alarm_events_alarm ON alarm_events (alarm_id);
