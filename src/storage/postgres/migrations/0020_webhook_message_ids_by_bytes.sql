-- Message ids are made in creation order byte by byte (`new_ordered_id`, `0-9A-Za-z`):
-- they are compared as bytes ("C"), not as the database's collation orders words (where
-- `a` comes before `B`), so that an endpoint's messages are listed newest first, and
-- paged, whatever the database's locale. SQLite compares text as bytes already.
ALTER TABLE webhook_messages ALTER COLUMN id TYPE TEXT COLLATE "C";
