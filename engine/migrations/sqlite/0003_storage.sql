-- Farms, the equipment registry, users, the latest state of each device, telemetry
-- history for the dashboard's charts, and the notification outbox.
CREATE TABLE farms (
    farm_id     TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE equipment (
    device_id   TEXT    PRIMARY KEY,
    device_type TEXT    NOT NULL,
    farm_id     TEXT,
    name        TEXT    NOT NULL,
    first_seen  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE INDEX equipment_farm ON equipment (farm_id, device_id);

CREATE TABLE users (
    user_id     TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    email       TEXT,
    role        TEXT    NOT NULL CHECK (role IN ('operator', 'farm_viewer', 'admin')),
    farms       TEXT    NOT NULL DEFAULT '[]',
    created_at  INTEGER NOT NULL
);

CREATE TABLE device_shadows (
    device_id   TEXT    PRIMARY KEY,
    version     INTEGER NOT NULL,
    document    TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE telemetry (
    device_id    TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    ts           INTEGER NOT NULL,
    value_number REAL,
    value_text   TEXT,
    version      INTEGER NOT NULL,
    PRIMARY KEY (device_id, key, ts)
) WITHOUT ROWID;

CREATE TABLE notification_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key       TEXT    NOT NULL UNIQUE,
    alarm_id        TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);

CREATE INDEX notification_outbox_due ON notification_outbox (status, next_attempt_at);
