-- +goose Up
-- The end-to-end encryption key directory: public keys only. Keyed by
-- device; a user's devices are found through device_keys_by_user.
CREATE TABLE device_keys (
    device_id     text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    user_id       text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    identity_key  bytea  NOT NULL,
    signing_key   bytea  NOT NULL,
    spk_id        bigint NOT NULL,
    spk_public    bytea  NOT NULL,
    spk_signature bytea  NOT NULL,
    updated_at    bigint NOT NULL
);
CREATE INDEX device_keys_by_user ON device_keys (user_id, device_id);

-- One-time prekeys, claimed (deleted) one at a time, lowest key id first.
CREATE TABLE one_time_prekeys (
    device_id  text COLLATE "C" NOT NULL REFERENCES device_keys (device_id) ON DELETE CASCADE,
    key_id     bigint NOT NULL,
    public_key bytea  NOT NULL,
    PRIMARY KEY (device_id, key_id)
);

-- +goose Down
DROP TABLE one_time_prekeys;
DROP TABLE device_keys;
