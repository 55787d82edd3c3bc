-- +goose Up
-- What a message carries about the media it references (type, size,
-- dimensions, duration, file name and the inline data: URL thumbnail), as
-- chat.MediaInfo's JSON, copied from the media catalogue when the message is
-- accepted: every delivery (live, sync, history, last message) reads it with
-- the message instead of looking the item up. NULL for messages without
-- media and for e2ee messages. Kept as text (not jsonb): it is only ever
-- read back whole, and text keeps it byte for byte.
ALTER TABLE messages ADD COLUMN media_json text;

-- +goose Down
ALTER TABLE messages DROP COLUMN media_json;
