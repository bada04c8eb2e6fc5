-- Two of the outbox's indexes go: every message written for every event, and every
-- attempt recorded (an update of a message is never HOT), updated them. An endpoint's
-- messages are listed, newest first, from the unique index of their ids, which are made
-- in order; old settled messages are forgotten in the primary key's order.
DROP INDEX webhook_messages_by_endpoint;
DROP INDEX webhook_messages_by_age;
