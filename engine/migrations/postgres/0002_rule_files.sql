-- Rule files stored through the API; for its device type, a stored file takes precedence over
-- the rules directory and the bundled rules.
CREATE TABLE rule_files (
    device_type TEXT    PRIMARY KEY,
    text        TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    updated_by  TEXT    NOT NULL
);
