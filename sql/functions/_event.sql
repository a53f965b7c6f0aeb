SET ROLE credit_owner;

-- Writes one event (SPEC "Events") into credit.event_inbox, in the caller's
-- transaction: it commits with the change, or not at all. Every function
-- that changes a line or a hold calls this, under the line's row lock, which
-- orders the events of one line (migration 0008), and after it has written
-- the change itself, which gave the transaction its xid before the event
-- takes its seq (credit._move_events relies on that order). available is the
-- line's available after the change; data holds the kind's other figures,
-- or NULL. The feed gets the event when a mover takes it.
CREATE OR REPLACE FUNCTION credit._event(
    wholesaler_id text, retailer_id text, kind text, ref text, amount numeric, available numeric,
    data jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO credit.event_inbox (wholesaler_id, retailer_id, kind, ref, amount, available, data)
    VALUES (wholesaler_id, retailer_id, kind, ref, amount, available, data);
END
$$;
REVOKE ALL ON FUNCTION credit._event(text, text, text, text, numeric, numeric, jsonb) FROM PUBLIC;
