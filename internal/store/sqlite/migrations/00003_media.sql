-- +goose Up
-- The media catalogue: metadata of uploaded files; the bytes are in blob
-- storage under blob_key. A deleted item stays as a tombstone (deleted_at > 0)
-- until it is purged, so that a message checked before the delete and
-- committed after it is refused (see the trigger below).
CREATE TABLE media (
    id           TEXT    NOT NULL PRIMARY KEY,
    uploader_id  TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    width        INTEGER NOT NULL DEFAULT 0,
    height       INTEGER NOT NULL DEFAULT 0,
    duration_ms  INTEGER NOT NULL DEFAULT 0,
    name         TEXT    NOT NULL DEFAULT '',
    blob_key     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    deleted_at   INTEGER NOT NULL DEFAULT 0,
    -- Set once a message references the item (trigger below); only items
    -- still at 0 are garbage candidates, so collection never walks the
    -- whole catalogue. The delete itself re-checks messages.
    referenced   INTEGER NOT NULL DEFAULT 0,
    thumbnail    TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;
-- Garbage candidates, oldest first.
CREATE INDEX media_garbage ON media (created_at) WHERE deleted_at = 0 AND referenced = 0;
-- Purging old tombstones.
CREATE INDEX media_tombstones ON media (deleted_at) WHERE deleted_at > 0;

-- Messages that reference media: the read check (is a conversation of this
-- user referencing it?) and the garbage check (is anything referencing it?).
-- Partial: most messages carry no media. Queries must repeat the condition
-- (media_id <> '') for SQLite to use it.
CREATE INDEX messages_by_media ON messages (media_id, conversation_id) WHERE media_id <> '';

-- A message may not reference a deleted item. The send path checks that the
-- sender uploaded the media before queueing the message; this refuses, in
-- the message's own transaction, one whose media was collected in between.
-- +goose StatementBegin
CREATE TRIGGER messages_media_alive BEFORE INSERT ON messages
WHEN NEW.media_id <> ''
BEGIN
    SELECT RAISE(ABORT, 'the media of this message was deleted; upload it again')
    WHERE EXISTS (SELECT 1 FROM media WHERE id = NEW.media_id AND deleted_at > 0);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER messages_media_referenced AFTER INSERT ON messages
WHEN NEW.media_id <> ''
BEGIN
    UPDATE media SET referenced = 1 WHERE id = NEW.media_id AND referenced = 0;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER messages_media_referenced;
DROP TRIGGER messages_media_alive;
DROP INDEX messages_by_media;
DROP TABLE media;
