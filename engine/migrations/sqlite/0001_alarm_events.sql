-- Every alarm transition, in the order the engine made them.
CREATE TABLE alarm_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id    TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    rule_id     TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    transition  TEXT    NOT NULL CHECK (transition IN ('raised', 'cleared', 'escalated', 'flapping', 'settled',
                                                    'acknowledged', 'shelved', 'unshelved')),
    key         TEXT,
    value       TEXT,
    message     TEXT    NOT NULL,
    raised_at   INTEGER NOT NULL,
    cleared_at  INTEGER,
    frame_ts    INTEGER,
    cleared_frame_ts INTEGER,
    rule_version TEXT NOT NULL DEFAULT '',
    inputs      TEXT    NOT NULL DEFAULT '[]',
    flapping    INTEGER NOT NULL DEFAULT 0,
    operator    TEXT,
    shelved_until INTEGER,
    recorded_at INTEGER NOT NULL
);

CREATE INDEX alarm_events_device ON alarm_events (device_id, id);
CREATE INDEX alarm_events_alarm ON alarm_events (alarm_id);
