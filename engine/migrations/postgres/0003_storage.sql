-- Farms, the equipment registry, users, the latest state of each device, telemetry
-- history for the dashboard's charts, and the notification outbox.
CREATE TABLE farms (
    farm_id     TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE equipment (
    device_id   TEXT    PRIMARY KEY,
    device_type TEXT    NOT NULL,
    farm_id     TEXT,
    name        TEXT    NOT NULL,
    first_seen  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE INDEX equipment_farm ON equipment (farm_id, device_id);

CREATE TABLE users (
    user_id     TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    email       TEXT,
    role        TEXT    NOT NULL CHECK (role IN ('operator', 'farm_viewer', 'admin')),
    farms       TEXT    NOT NULL DEFAULT '[]',
    created_at  BIGINT NOT NULL
);

CREATE TABLE device_shadows (
    device_id   TEXT    PRIMARY KEY,
    version     BIGINT NOT NULL,
    document    TEXT    NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE telemetry (
    device_id    TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    ts           BIGINT NOT NULL,
    value_number DOUBLE PRECISION,
    value_text   TEXT,
    version      BIGINT NOT NULL,
    PRIMARY KEY (device_id, key, ts)
);

CREATE TABLE notification_outbox (
    id              BIGSERIAL PRIMARY KEY,
    dedup_key       TEXT    NOT NULL UNIQUE,
    alarm_id        TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'dead')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);

CREATE INDEX notification_outbox_due ON notification_outbox (status, next_attempt_at);
