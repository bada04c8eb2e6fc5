-- Two fewer b-trees for every message written. The oldest undelivered message is the first
-- pending one of some endpoint (the pending index, per endpoint); messages to forget are
-- found from the start of the table, whose order follows their age.
DROP INDEX webhook_messages_by_age;
DROP INDEX webhook_messages_undelivered;
