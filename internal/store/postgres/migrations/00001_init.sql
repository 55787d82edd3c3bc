-- Parley's PostgreSQL schema, version 1.
--
-- Keyed for growth: everything a conversation owns is keyed by its id first
-- (messages PRIMARY KEY (conversation_id, seq), members PRIMARY KEY
-- (conversation_id, user_id)), so history pages, membership checks and unread
-- counts are range reads of one conversation, and the tables could later be
-- hash-partitioned (or sharded) by conversation_id without changing a query.
--
-- Identifiers use the "C" collation: byte order, as in the SQLite store, and
-- memcmp comparisons in every index.
--
-- Tables updated on every message (conversations.last_seq) or every receipt
-- (members' watermarks) leave free space in their pages so those updates stay
-- HOT (no index touched: none of the updated columns is indexed).

-- +goose Up
CREATE TABLE users (
    id            text COLLATE "C" NOT NULL PRIMARY KEY,
    username      text COLLATE "C" NOT NULL UNIQUE,
    display_name  text   NOT NULL DEFAULT '',
    created_at    bigint NOT NULL,
    last_seen     bigint NOT NULL DEFAULT 0,
    password_hash bytea  NOT NULL
);

CREATE TABLE devices (
    id         text COLLATE "C" NOT NULL PRIMARY KEY,
    user_id    text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       text   NOT NULL DEFAULT '',
    created_at bigint NOT NULL,
    last_seen  bigint NOT NULL DEFAULT 0,
    -- Insertion order, to list devices created in the same millisecond in
    -- the order they were created (SQLite's rowid).
    ord        bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX devices_by_user ON devices (user_id, created_at, ord);

CREATE TABLE sessions (
    token_hash text COLLATE "C" NOT NULL PRIMARY KEY,
    user_id    text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id  text COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    expires_at bigint NOT NULL
);
CREATE INDEX sessions_by_device ON sessions (device_id);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE conversations (
    id         text COLLATE "C" NOT NULL PRIMARY KEY,
    type       text   NOT NULL CHECK (type IN ('direct', 'group')),
    name       text   NOT NULL DEFAULT '',
    -- The per-conversation sequence counter. Every writer of a conversation's
    -- messages or members first locks this row (SELECT ... FOR NO KEY
    -- UPDATE) and holds the lock until it commits; an append stores the
    -- message at last_seq + 1 and raises last_seq in the same statement, so
    -- seqs are gapless and unique across any number of nodes.
    last_seq   bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
) WITH (fillfactor = 70);

CREATE TABLE members (
    conversation_id text COLLATE "C" NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            text   NOT NULL CHECK (role IN ('admin', 'member')),
    delivered_seq   bigint NOT NULL DEFAULT 0,
    read_seq        bigint NOT NULL DEFAULT 0,
    joined_at       bigint NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
) WITH (fillfactor = 80);
-- The conversations of a user (conversation list, sync cursors).
CREATE INDEX members_by_user ON members (user_id, conversation_id);

-- Makes a direct conversation unique per unordered pair of users.
CREATE TABLE direct_pairs (
    user_lo         text COLLATE "C" NOT NULL,
    user_hi         text COLLATE "C" NOT NULL,
    conversation_id text COLLATE "C" NOT NULL UNIQUE REFERENCES conversations (id) ON DELETE CASCADE,
    PRIMARY KEY (user_lo, user_hi),
    CHECK (user_lo < user_hi)
);

CREATE TABLE messages (
    conversation_id   text COLLATE "C" NOT NULL,
    seq               bigint NOT NULL,
    sender_id         text COLLATE "C" NOT NULL,
    -- NULL when the sender gave none: such a message is never a duplicate.
    client_message_id text COLLATE "C",
    id                text COLLATE "C" NOT NULL,
    sender_device_id  text   NOT NULL DEFAULT '',
    content_type      text   NOT NULL,
    media_id          text   NOT NULL DEFAULT '',
    reply_to_seq      bigint NOT NULL DEFAULT 0,
    timestamp         bigint NOT NULL,
    client_timestamp  bigint NOT NULL DEFAULT 0,
    content           text   NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
-- A sender's messages in a conversation: unread counts subtract the
-- caller's own messages after its read_seq, a short range of this index.
CREATE INDEX messages_by_sender ON messages (conversation_id, sender_id, seq);

-- Idempotency keys. The contract scopes a ClientID to its sender across all
-- conversations (a retry naming another conversation is still a duplicate),
-- so this lookup is keyed by sender, not by conversation. Keeping it out of
-- the messages table keeps messages keyed by conversation alone (a
-- partitioned messages table could not carry a unique index without the
-- partition key); this table can be partitioned by sender_id on its own.
-- Rows are written only by AppendBatch, in the same statement as the message
-- they point to.
CREATE TABLE message_keys (
    sender_id         text COLLATE "C" NOT NULL,
    client_message_id text COLLATE "C" NOT NULL,
    conversation_id   text COLLATE "C" NOT NULL,
    seq               bigint NOT NULL,
    PRIMARY KEY (sender_id, client_message_id)
);

-- +goose Down
DROP TABLE message_keys;
DROP TABLE messages;
DROP TABLE direct_pairs;
DROP TABLE members;
DROP TABLE conversations;
DROP TABLE sessions;
DROP TABLE devices;
DROP TABLE users;
