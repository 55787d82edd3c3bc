-- +goose Up
-- Safety: blocks between users, reports of messages, suspended accounts.

CREATE TABLE blocks (
    blocker_id TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
) WITHOUT ROWID;
CREATE INDEX blocks_by_blocked ON blocks (blocked_id, blocker_id);

CREATE TABLE reports (
    id              TEXT    NOT NULL PRIMARY KEY,
    reporter_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    reason          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    resolved_at     INTEGER NOT NULL DEFAULT 0,
    resolution      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX reports_open ON reports (resolved_at, created_at);

CREATE TABLE suspensions (
    user_id    TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    reason     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Invitations for --registration invite: the SHA-256 of each token; a
-- registration uses one up.
CREATE TABLE invites (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- The media quota: the size of a user's media.
CREATE INDEX media_by_uploader ON media (uploader_id, size) WHERE deleted_at = 0;

-- +goose Down
DROP TABLE invites;
DROP INDEX media_by_uploader;
DROP TABLE suspensions;
DROP TABLE reports;
DROP TABLE blocks;
