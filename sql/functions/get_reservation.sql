SET ROLE credit_owner;

-- One hold, by its order_ref, as an application shows it: a read that takes
-- no lock and writes nothing. status is the effective one (an active hold
-- past expires_at reads 'expired' before any sweep marks it).
CREATE OR REPLACE FUNCTION credit.get_reservation(wholesaler_id text, retailer_id text, order_ref text)
RETURNS credit.reservation_result
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_line bigint;
    r credit.reservation_result;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    PERFORM credit._require_id(order_ref, 'order_ref');
    SELECT l.id INTO v_line FROM credit.line l
     WHERE l.wholesaler_id = get_reservation.wholesaler_id AND l.retailer_id = get_reservation.retailer_id;
    IF v_line IS NULL THEN
        RETURN ROW('line_not_found', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::credit.reservation_result;
    END IF;
    SELECT 'ok', h.id, CASE WHEN h.status = 'active' AND h.expires_at <= now() THEN 'expired' ELSE h.status END,
           h.amount, h.expires_at, h.created_at, h.released_at, h.release_reason, h.converted_at,
           h.converted_amount, h.released_amount, h.debit_entry_id,
           (SELECT e.due_date FROM credit.ledger_entry e WHERE e.id = h.debit_entry_id)
      INTO r
      FROM credit.reservation h
     WHERE h.line_id = v_line AND h.order_ref = get_reservation.order_ref;
    IF NOT FOUND THEN
        RETURN ROW('reservation_not_found', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::credit.reservation_result;
    END IF;
    RETURN r;
END
$$;
REVOKE ALL ON FUNCTION credit.get_reservation(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.get_reservation(text, text, text) TO credit_app, credit_auditor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.get_reservation(text, text, text) IS $doc$One hold, by its order_ref, as an application shows it. A read: no lock, no write. status is the effective
one: an active hold past its expiry reads expired before any sweep marks it.
Arguments:
  wholesaler_id, retailer_id: the line.
  order_ref: the order.
Codes: ok, line_not_found, reservation_not_found
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.$doc$;
COMMENT ON TYPE credit.reservation_result IS $doc$One hold, as get_reservation reads it. NULL columns when code is not ok.$doc$;
COMMENT ON COLUMN credit.reservation_result.code IS $doc$ok, line_not_found or reservation_not_found.$doc$;
COMMENT ON COLUMN credit.reservation_result.reservation_id IS $doc$The hold's id.$doc$;
COMMENT ON COLUMN credit.reservation_result.status IS $doc$active, released, converted or expired (effective: past its expiry reads expired).$doc$;
COMMENT ON COLUMN credit.reservation_result.amount IS $doc$The amount held.$doc$;
COMMENT ON COLUMN credit.reservation_result.expires_at IS $doc$When the hold expires; NULL: never.$doc$;
COMMENT ON COLUMN credit.reservation_result.created_at IS $doc$When the hold was granted.$doc$;
COMMENT ON COLUMN credit.reservation_result.released_at IS $doc$When it was released; NULL otherwise.$doc$;
COMMENT ON COLUMN credit.reservation_result.release_reason IS $doc$The reason given with the release.$doc$;
COMMENT ON COLUMN credit.reservation_result.converted_at IS $doc$When it was converted; NULL otherwise.$doc$;
COMMENT ON COLUMN credit.reservation_result.converted_amount IS $doc$The amount debited by its conversion.$doc$;
COMMENT ON COLUMN credit.reservation_result.released_amount IS $doc$The amount released: the whole hold on release, the rest on a partial conversion.$doc$;
COMMENT ON COLUMN credit.reservation_result.ledger_entry_id IS $doc$The id of its DEBIT; NULL until converted.$doc$;
COMMENT ON COLUMN credit.reservation_result.due_date IS $doc$Its DEBIT's due date; NULL until converted.$doc$;
