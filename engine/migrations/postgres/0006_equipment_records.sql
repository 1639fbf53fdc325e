-- Equipment records kept by farmers and technicians, per-equipment changes to the
-- maintenance plans, work orders, and the metadata of equipment documents.
CREATE TABLE equipment_records (
    equipment_id     TEXT    PRIMARY KEY,
    farm_id          TEXT    NOT NULL,
    barn             TEXT    NOT NULL DEFAULT '',
    equipment_type   TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    model            TEXT    NOT NULL DEFAULT '',
    serial_number    TEXT    NOT NULL DEFAULT '',
    install_date     TEXT,
    firmware_version TEXT    NOT NULL DEFAULT '',
    location         TEXT    NOT NULL DEFAULT '',
    device_id        TEXT    UNIQUE,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);

CREATE INDEX equipment_records_farm ON equipment_records (farm_id, name);

CREATE TABLE maintenance_overrides (
    equipment_id    TEXT    NOT NULL,
    task_id         TEXT    NOT NULL,
    every_days      DOUBLE PRECISION,
    every_run_hours DOUBLE PRECISION,
    every_cycles    DOUBLE PRECISION,
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (equipment_id, task_id)
);

CREATE TABLE work_orders (
    work_order_id TEXT    PRIMARY KEY,
    equipment_id  TEXT    NOT NULL,
    task_id       TEXT,
    performed_by  TEXT    NOT NULL,
    performed_at  BIGINT  NOT NULL,
    notes         TEXT    NOT NULL DEFAULT '',
    counters      TEXT    NOT NULL DEFAULT '{}',
    created_at    BIGINT  NOT NULL
);

CREATE INDEX work_orders_equipment ON work_orders (equipment_id, performed_at);

CREATE TABLE equipment_documents (
    document_id   TEXT    PRIMARY KEY,
    equipment_id  TEXT    NOT NULL,
    farm_id       TEXT    NOT NULL,
    work_order_id TEXT,
    title         TEXT    NOT NULL,
    kind          TEXT    NOT NULL CHECK (kind IN ('manual', 'service_report', 'photo', 'other')),
    file_name     TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    size_bytes    BIGINT  NOT NULL,
    storage_key   TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'stored')),
    uploaded_by   TEXT    NOT NULL,
    uploaded_at   BIGINT  NOT NULL
);

CREATE INDEX equipment_documents_equipment ON equipment_documents (equipment_id, uploaded_at);
