-- Parley's embedded schema, version 1.
--
-- Keyed for growth: everything a conversation owns is clustered under its id
-- (WITHOUT ROWID tables whose primary key starts with conversation_id), so
-- history paging and membership checks are range reads of one b-tree. Small
-- columns come before large ones so scans that only need the former never
-- touch overflow pages.

-- +goose Up
CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL DEFAULT 0,
    password_hash BLOB    NOT NULL
);

CREATE TABLE devices (
    id         TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL DEFAULT 0
);
-- A user's devices, oldest first (the implicit rowid breaks ties in insertion order).
CREATE INDEX devices_by_user ON devices (user_id, created_at);

CREATE TABLE sessions (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id  TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
-- Revoking every token of a device; also serves the device foreign key.
CREATE INDEX sessions_by_device ON sessions (device_id);
-- Serves the user foreign key (ON DELETE CASCADE would otherwise scan).
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE conversations (
    id         TEXT    NOT NULL PRIMARY KEY,
    type       TEXT    NOT NULL CHECK (type IN ('direct', 'group')),
    name       TEXT    NOT NULL DEFAULT '',
    -- The per-conversation sequence counter: raised in the same transaction
    -- as each message insert, so seqs are gapless and never reused.
    last_seq   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE members (
    conversation_id TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            TEXT    NOT NULL CHECK (role IN ('admin', 'member')),
    delivered_seq   INTEGER NOT NULL DEFAULT 0,
    read_seq        INTEGER NOT NULL DEFAULT 0,
    joined_at       INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
-- The conversations of a user (conversation list, sync cursors).
CREATE INDEX members_by_user ON members (user_id, conversation_id);

-- Makes a direct conversation unique per unordered pair of users.
CREATE TABLE direct_pairs (
    user_lo         TEXT NOT NULL,
    user_hi         TEXT NOT NULL,
    conversation_id TEXT NOT NULL UNIQUE REFERENCES conversations (id) ON DELETE CASCADE,
    PRIMARY KEY (user_lo, user_hi),
    CHECK (user_lo < user_hi)
) WITHOUT ROWID;

CREATE TABLE messages (
    conversation_id   TEXT    NOT NULL,
    seq               INTEGER NOT NULL,
    sender_id         TEXT    NOT NULL,
    -- NULL when the sender gave none: such a message is never a duplicate.
    client_message_id TEXT,
    id                TEXT    NOT NULL,
    sender_device_id  TEXT    NOT NULL DEFAULT '',
    content_type      TEXT    NOT NULL,
    media_id          TEXT    NOT NULL DEFAULT '',
    reply_to_seq      INTEGER NOT NULL DEFAULT 0,
    timestamp         INTEGER NOT NULL,
    client_timestamp  INTEGER NOT NULL DEFAULT 0,
    content           TEXT    NOT NULL,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
-- Idempotency: one message per (sender, client message id).
CREATE UNIQUE INDEX messages_idempotency ON messages (sender_id, client_message_id);
-- A sender's messages per conversation: unread counts subtract the caller's
-- own messages after its read_seq, which this makes a short range count
-- instead of a scan of everything unread.
CREATE INDEX messages_by_sender ON messages (sender_id, conversation_id, seq);

-- +goose Down
DROP TABLE messages;
DROP TABLE direct_pairs;
DROP TABLE members;
DROP TABLE conversations;
DROP TABLE sessions;
DROP TABLE devices;
DROP TABLE users;
