SET ROLE credit_owner;

-- Writes one event (SPEC "Events") into the feed, credit.event, in the
-- caller's transaction: it commits with the change, or not at all. Every
-- function that changes a line or a hold calls this (or writes the same row
-- inline), under the line's row lock, which orders the events of one line,
-- and after it has written the change itself, which gave the transaction its
-- xid before the event draws its event_id: the feed's horizon relies on that
-- order (migration 0010, credit._event_horizon). available is the line's
-- available after the change; data holds the kind's other figures, or NULL;
-- events_after composes the two when the event is read. Readers see the
-- event once every event_id below it is final.
CREATE OR REPLACE FUNCTION credit._event(
    wholesaler_id text, retailer_id text, kind text, ref text, amount numeric, available numeric,
    data jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO credit.event (wholesaler_id, retailer_id, kind, ref, amount, available, data)
    VALUES (wholesaler_id, retailer_id, kind, ref, amount, available, data);
END
$$;
REVOKE ALL ON FUNCTION credit._event(text, text, text, text, numeric, numeric, jsonb) FROM PUBLIC;
