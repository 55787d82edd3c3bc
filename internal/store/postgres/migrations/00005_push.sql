-- +goose Up
-- Push notifications: where each device wants them, and the durable outbox.

CREATE TABLE push_subscriptions (
    id         text COLLATE "C" NOT NULL PRIMARY KEY,
    user_id    text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id  text COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    platform   text   NOT NULL CHECK (platform IN ('webpush', 'apns', 'fcm', 'unifiedpush')),
    -- The push URL (webpush, unifiedpush) or the device token (apns, fcm).
    endpoint   text COLLATE "C" NOT NULL,
    p256dh     bytea,
    auth       bytea,
    created_at bigint NOT NULL,
    -- Insertion order, for subscriptions created in the same millisecond.
    ord        bigint GENERATED ALWAYS AS IDENTITY,
    UNIQUE (platform, endpoint)
);
CREATE INDEX push_subscriptions_by_user ON push_subscriptions (user_id, created_at, ord);
CREATE INDEX push_subscriptions_by_device ON push_subscriptions (device_id);

-- One row per (user, conversation) with messages that arrived while none of
-- the user's devices had a socket: the collapse state. Due when it counts
-- more than it last notified and due_at has passed; due_at is the end of
-- the window opened by the last notification.
CREATE TABLE push_pending (
    user_id         text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id text COLLATE "C" NOT NULL,
    count           bigint NOT NULL,
    notified        bigint NOT NULL DEFAULT 0,
    sender_id       text COLLATE "C" NOT NULL,
    last_seq        bigint NOT NULL,
    due_at          bigint NOT NULL,
    updated_at      bigint NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
) WITH (fillfactor = 80);
CREATE INDEX push_pending_due ON push_pending (due_at) WHERE count > notified;

-- One notification per (subscription, conversation), ready to send; a newer
-- one for the same conversation replaces it (gen grows). Claimed jobs are
-- leased by moving due_at ahead; claims skip rows another node has locked
-- (FOR UPDATE SKIP LOCKED).
CREATE TABLE push_jobs (
    subscription_id text COLLATE "C" NOT NULL REFERENCES push_subscriptions (id) ON DELETE CASCADE,
    conversation_id text COLLATE "C" NOT NULL,
    kind            text    NOT NULL CHECK (kind IN ('alert', 'clear')),
    sender_name     text    NOT NULL DEFAULT '',
    count           bigint  NOT NULL DEFAULT 0,
    badge           bigint  NOT NULL DEFAULT 0,
    seq             bigint  NOT NULL DEFAULT 0,
    attempts        integer NOT NULL DEFAULT 0,
    due_at          bigint  NOT NULL,
    gen             bigint  NOT NULL DEFAULT 1,
    PRIMARY KEY (subscription_id, conversation_id)
);
CREATE INDEX push_jobs_due ON push_jobs (due_at);

-- +goose Down
DROP TABLE push_jobs;
DROP TABLE push_pending;
DROP TABLE push_subscriptions;
