-- +goose Up
-- The end-to-end encryption key directory: public keys only.
CREATE TABLE device_keys (
    device_id      TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users(id),
    identity_key   BLOB NOT NULL,
    signing_key    BLOB NOT NULL,
    spk_id         INTEGER NOT NULL,
    spk_public     BLOB NOT NULL,
    spk_signature  BLOB NOT NULL,
    updated_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX device_keys_by_user ON device_keys (user_id, device_id);

CREATE TABLE one_time_prekeys (
    device_id  TEXT NOT NULL REFERENCES device_keys(device_id) ON DELETE CASCADE,
    key_id     INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    PRIMARY KEY (device_id, key_id)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE one_time_prekeys;
DROP TABLE device_keys;
