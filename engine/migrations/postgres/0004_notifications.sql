-- Notifications: the outbox rebuilt with the kinds, statuses and columns the notifier uses
-- (0003 created it before anything wrote to it, so no row is lost), the cursor over
-- alarm_events, the pending reminders and escalations, and maintenance windows set through
-- the API.
DROP TABLE notification_outbox;

CREATE TABLE notification_outbox (
    id              BIGSERIAL PRIMARY KEY,
    dedup_key       TEXT    NOT NULL UNIQUE,
    alarm_id        TEXT,
    event_id        BIGINT,
    kind            TEXT    NOT NULL CHECK (kind IN ('alarm', 'reminder', 'escalation', 'digest', 'summary')),
    transition      TEXT,
    severity        TEXT,
    route_id        TEXT,
    recipient       TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'dead', 'held', 'digested',
                                                     'cancelled', 'suppressed')),
    reason          TEXT,
    digest_id       BIGINT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);

CREATE INDEX notification_outbox_due ON notification_outbox (status, next_attempt_at);
CREATE INDEX notification_outbox_alarm ON notification_outbox (alarm_id, id);
CREATE INDEX notification_outbox_recipient ON notification_outbox (recipient, channel, created_at);

-- The last alarm_events row already turned into outbox rows, moved in the same transaction
-- that inserts them.
CREATE TABLE notification_cursor (
    name          TEXT    PRIMARY KEY,
    last_event_id BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- One row per unacknowledged alarm and route with reminders or escalation steps still to come.
CREATE TABLE notification_schedule (
    alarm_id           TEXT    NOT NULL,
    route_id           TEXT    NOT NULL,
    alarm              TEXT    NOT NULL,
    raised_at          BIGINT NOT NULL,
    escalation_level   BIGINT NOT NULL DEFAULT 0,
    next_escalation_at BIGINT,
    reminders_sent     BIGINT NOT NULL DEFAULT 0,
    next_reminder_at   BIGINT,
    shelved_until      BIGINT,
    PRIMARY KEY (alarm_id, route_id)
);

CREATE TABLE notification_maintenance (
    id          BIGSERIAL PRIMARY KEY,
    farm_id     TEXT    NOT NULL,
    starts_at   BIGINT NOT NULL,
    ends_at     BIGINT NOT NULL,
    reason      TEXT    NOT NULL DEFAULT '',
    created_by  TEXT    NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE INDEX notification_maintenance_farm ON notification_maintenance (farm_id, ends_at);
