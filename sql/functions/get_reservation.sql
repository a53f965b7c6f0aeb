SET ROLE credit_owner;

-- One hold, by its order_ref, as an application shows it: a read that takes
-- no lock and writes nothing. status is the effective one (an active hold
-- past expires_at reads 'expired' before any sweep marks it). remaining_amount
-- is what the hold still counts toward reserved (amount less what was
-- shipped; 0 once it has ended, or expired unswept); ledger_entry_id and
-- due_date are those of its latest DEBIT.
-- v1.2 replaced the result type (migration 0007). The function of the release
-- before goes, in this reload's one transaction; its type stays (a later
-- release drops it): a call still running the old function when the reload
-- commits returns the old type, and would fail if it were gone.
DO $$
BEGIN
    IF (SELECT prorettype FROM pg_proc WHERE oid = to_regprocedure('credit.get_reservation(text, text, text)'))
       = to_regtype('credit.reservation_result') THEN
        DROP FUNCTION credit.get_reservation(text, text, text);
    END IF;
END
$$;
CREATE OR REPLACE FUNCTION credit.get_reservation(wholesaler_id text, retailer_id text, order_ref text)
RETURNS credit.reservation_info
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_line bigint;
    r credit.reservation_info;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    PERFORM credit._require_id(order_ref, 'order_ref');
    SELECT l.id INTO v_line FROM credit.line l
     WHERE l.wholesaler_id = get_reservation.wholesaler_id AND l.retailer_id = get_reservation.retailer_id;
    IF v_line IS NULL THEN
        RETURN ROW('line_not_found', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                   NULL)::credit.reservation_info;
    END IF;
    SELECT 'ok', h.id, CASE WHEN h.status = 'active' AND h.expires_at <= now() THEN 'expired' ELSE h.status END,
           h.amount, h.expires_at, h.created_at, h.released_at, h.release_reason, h.converted_at,
           h.converted_amount, h.released_amount, h.debit_entry_id,
           (SELECT e.due_date FROM credit.ledger_entry e WHERE e.id = h.debit_entry_id),
           CASE WHEN h.status = 'active' AND (h.expires_at IS NULL OR h.expires_at > now())
                THEN h.amount - coalesce(h.converted_amount, 0) ELSE 0.00 END
      INTO r
      FROM credit.reservation h
     WHERE h.line_id = v_line AND h.order_ref = get_reservation.order_ref;
    IF NOT FOUND THEN
        RETURN ROW('reservation_not_found', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                   NULL)::credit.reservation_info;
    END IF;
    RETURN r;
END
$$;
REVOKE ALL ON FUNCTION credit.get_reservation(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.get_reservation(text, text, text) TO credit_app, credit_auditor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.get_reservation(text, text, text) IS $doc$One hold, by its order_ref, as an application shows it. A read: no lock, no write. status is the effective
one: an active hold past its expiry reads expired before any sweep marks it. An order shipped in parts
shows what was debited so far, its latest DEBIT, and what it still holds.
Arguments:
  wholesaler_id, retailer_id: the line.
  order_ref: the order.
Codes: ok, line_not_found, reservation_not_found
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.$doc$;
COMMENT ON TYPE credit.reservation_info IS $doc$One hold, as get_reservation reads it. NULL columns when code is not ok.$doc$;
COMMENT ON COLUMN credit.reservation_info.code IS $doc$ok, line_not_found or reservation_not_found.$doc$;
COMMENT ON COLUMN credit.reservation_info.reservation_id IS $doc$The hold's id.$doc$;
COMMENT ON COLUMN credit.reservation_info.status IS $doc$active, released, converted or expired (effective: past its expiry reads expired).$doc$;
COMMENT ON COLUMN credit.reservation_info.amount IS $doc$The order's total, after amendments.$doc$;
COMMENT ON COLUMN credit.reservation_info.expires_at IS $doc$When the hold expires; NULL: never.$doc$;
COMMENT ON COLUMN credit.reservation_info.created_at IS $doc$When the hold was granted.$doc$;
COMMENT ON COLUMN credit.reservation_info.released_at IS $doc$When it was released; NULL otherwise.$doc$;
COMMENT ON COLUMN credit.reservation_info.release_reason IS $doc$The reason given with the release.$doc$;
COMMENT ON COLUMN credit.reservation_info.converted_at IS $doc$When it became converted (nothing left to hold); NULL otherwise.$doc$;
COMMENT ON COLUMN credit.reservation_info.converted_amount IS $doc$The amount debited so far, by its shipments and its final conversion; NULL until its first DEBIT.$doc$;
COMMENT ON COLUMN credit.reservation_info.released_amount IS $doc$What its end released: what remained on release or expiry, the rest on a final conversion; NULL while
active. converted_amount + released_amount = amount once it has ended.$doc$;
COMMENT ON COLUMN credit.reservation_info.ledger_entry_id IS $doc$The id of its latest DEBIT; NULL until the first.$doc$;
COMMENT ON COLUMN credit.reservation_info.due_date IS $doc$Its latest DEBIT's due date; NULL until the first.$doc$;
COMMENT ON COLUMN credit.reservation_info.remaining_amount IS $doc$What it still holds toward the line's reserved: amount less converted_amount while active; 0.00 once it
has ended (or expired, before any sweep).$doc$;
