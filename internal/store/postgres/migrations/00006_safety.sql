-- +goose Up
-- Safety: blocks between users, reports of messages, suspended accounts.

CREATE TABLE blocks (
    blocker_id text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at bigint NOT NULL,
    ord        bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX blocks_by_blocked ON blocks (blocked_id, blocker_id);

CREATE TABLE reports (
    id              text COLLATE "C" NOT NULL PRIMARY KEY,
    reporter_id     text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id text COLLATE "C" NOT NULL,
    seq             bigint NOT NULL,
    reason          text   NOT NULL,
    created_at      bigint NOT NULL,
    resolved_at     bigint NOT NULL DEFAULT 0,
    resolution      text   NOT NULL DEFAULT '',
    ord             bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX reports_open ON reports (resolved_at, created_at, ord);

CREATE TABLE suspensions (
    user_id    text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    reason     text   NOT NULL,
    created_at bigint NOT NULL
);

-- Invitations for --registration invite: the SHA-256 of each token; a
-- registration uses one up.
CREATE TABLE invites (
    token_hash text COLLATE "C" NOT NULL PRIMARY KEY,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);

-- The media quota: the size of a user's media.
CREATE INDEX media_by_uploader ON media (uploader_id, size) WHERE deleted_at = 0;

-- +goose Down
DROP TABLE invites;
DROP INDEX media_by_uploader;
DROP TABLE suspensions;
DROP TABLE reports;
DROP TABLE blocks;
