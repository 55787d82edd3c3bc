-- +goose Up
-- The media catalogue: metadata of uploaded files; the bytes are in blob
-- storage under blob_key. A deleted item stays as a tombstone (deleted_at > 0)
-- until it is purged, so that a message checked before the delete and
-- committed after it is refused: AppendBatch's statement locks the item's
-- row (FOR SHARE) and refuses the message if it is a tombstone, while
-- collection locks the row (FOR NO KEY UPDATE) before it checks for
-- referencing messages, so one of the two always sees the other.
CREATE TABLE media (
    id           text COLLATE "C" NOT NULL PRIMARY KEY,
    uploader_id  text COLLATE "C" NOT NULL,
    content_type text    NOT NULL,
    size         bigint  NOT NULL,
    width        integer NOT NULL DEFAULT 0,
    height       integer NOT NULL DEFAULT 0,
    duration_ms  bigint  NOT NULL DEFAULT 0,
    name         text    NOT NULL DEFAULT '',
    blob_key     text    NOT NULL,
    created_at   bigint  NOT NULL,
    deleted_at   bigint  NOT NULL DEFAULT 0,
    -- Set by collection once it finds a message referencing the item; only
    -- items still false are garbage candidates, so collection never walks
    -- the whole catalogue. The delete itself re-checks messages. (The send
    -- path does not set it: that would make concurrent sends of one item
    -- upgrade their share locks against each other.)
    referenced   boolean NOT NULL DEFAULT false,
    thumbnail    text    NOT NULL DEFAULT ''
);
-- Garbage candidates, oldest first.
CREATE INDEX media_garbage ON media (created_at) WHERE deleted_at = 0 AND NOT referenced;
-- Purging old tombstones.
CREATE INDEX media_tombstones ON media (deleted_at) WHERE deleted_at > 0;

-- Messages that reference media: the read check (is a conversation of this
-- user referencing it?) and the garbage check (is anything referencing it?),
-- as in the SQLite store. Partial: most messages carry no media; queries
-- repeat the condition (media_id <> '') so that generic plans may use it.
CREATE INDEX messages_by_media ON messages (media_id, conversation_id) WHERE media_id <> '';

-- +goose Down
DROP INDEX messages_by_media;
DROP TABLE media;
