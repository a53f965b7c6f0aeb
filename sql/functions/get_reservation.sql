SET ROLE credit_owner;

-- One hold, by its order_ref, as an application shows it: a read that takes
-- no lock and writes nothing. status is the effective one (an active hold
-- past expires_at reads 'expired' before any sweep marks it). remaining_amount
-- is what the hold still counts toward reserved (amount less what was
-- shipped; 0 once it has ended, or expired unswept); ledger_entry_id and
-- due_date are those of its latest DEBIT.
-- v1.2 replaced the result type (migration 0006); the function of the release
-- before, which returns the old one, goes with it.
DROP TYPE IF EXISTS credit.reservation_result CASCADE;
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
