-- +goose Up
-- Push notifications: where each device wants them, and the durable outbox.

CREATE TABLE push_subscriptions (
    id         TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id  TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    platform   TEXT    NOT NULL CHECK (platform IN ('webpush', 'apns', 'fcm', 'unifiedpush')),
    -- The push URL (webpush, unifiedpush) or the device token (apns, fcm).
    endpoint   TEXT    NOT NULL,
    p256dh     BLOB,
    auth       BLOB,
    created_at INTEGER NOT NULL,
    UNIQUE (platform, endpoint)
);
CREATE INDEX push_subscriptions_by_user ON push_subscriptions (user_id, created_at);
CREATE INDEX push_subscriptions_by_device ON push_subscriptions (device_id);

-- One row per (user, conversation) with messages that arrived while none of
-- the user's devices had a socket: the collapse state. Due when it counts
-- more than it last notified and due_at has passed; due_at is the end of
-- the window opened by the last notification.
CREATE TABLE push_pending (
    user_id         TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id TEXT    NOT NULL,
    count           INTEGER NOT NULL,
    notified        INTEGER NOT NULL DEFAULT 0,
    sender_id       TEXT    NOT NULL,
    last_seq        INTEGER NOT NULL,
    due_at          INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
) WITHOUT ROWID;
CREATE INDEX push_pending_due ON push_pending (due_at) WHERE count > notified;

-- One notification per (subscription, conversation), ready to send; a newer
-- one for the same conversation replaces it (gen grows). Claimed jobs are
-- leased by moving due_at ahead.
CREATE TABLE push_jobs (
    subscription_id TEXT    NOT NULL REFERENCES push_subscriptions (id) ON DELETE CASCADE,
    conversation_id TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('alert', 'clear')),
    sender_name     TEXT    NOT NULL DEFAULT '',
    count           INTEGER NOT NULL DEFAULT 0,
    badge           INTEGER NOT NULL DEFAULT 0,
    seq             INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    due_at          INTEGER NOT NULL,
    gen             INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (subscription_id, conversation_id)
) WITHOUT ROWID;
CREATE INDEX push_jobs_due ON push_jobs (due_at);

-- +goose Down
DROP TABLE push_jobs;
DROP TABLE push_pending;
DROP TABLE push_subscriptions;
