-- Two of the outbox's indexes go: every message written for every event updated them,
-- and with the others they made each event cost as many WAL pages as the write it
-- announces. An endpoint's messages are listed, newest first, from the unique index of
-- their ids, which are made in order; old settled messages are forgotten in commit order,
-- from the table itself.
DROP INDEX webhook_messages_by_endpoint;
DROP INDEX webhook_messages_by_age;
