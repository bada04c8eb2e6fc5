-- The dispatcher reads an endpoint's pending messages in commit order from this index,
-- ordered by `seq + 0`, an order the primary key cannot give. Ordered by `seq`, the planner
-- could walk the primary key instead and filter out every delivered message kept for the
-- retention period: it estimates that path cheap, taking pending messages to be spread
-- evenly through the table when they are the newest. Behind 37 000 delivered messages, a
-- batch cost 20 ms that way and 0.2 ms from this index.
DROP INDEX webhook_messages_pending;
CREATE INDEX webhook_messages_pending ON webhook_messages (endpoint_id, (seq + 0))
    WHERE status = 'pending';
