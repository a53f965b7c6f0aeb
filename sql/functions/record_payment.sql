SET ROLE credit_owner;

-- A payment: a CREDIT entry. Overpayment is allowed and makes outstanding negative.
--
-- A remittance names the invoices it pays: applies_to lists DEBIT refs (an
-- order_ref's final conversion or a shipment_ref), and the payment settles
-- each, in the order given, up to its unpaid amount while the money lasts;
-- what is left follows the allocation rule (oldest due first), then waits as
-- unapplied credit. Items already paid are skipped. A ref with no DEBIT on
-- the line is debit_not_found, and nothing is written. The list is kept on
-- the entry: a replay must name the same refs in the same order
-- (exists_with_different_terms otherwise). An empty list is no list.
-- v1.2 added applies_to (migration 0006).
DROP FUNCTION IF EXISTS credit.record_payment(text, text, text, numeric);
CREATE OR REPLACE FUNCTION credit.record_payment(
    wholesaler_id text, retailer_id text, payment_ref text, amount numeric, applies_to text[] DEFAULT NULL)
RETURNS credit.entry_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_amount numeric;
    v_refs text[] := CASE WHEN cardinality(applies_to) > 0 THEN applies_to END;
    v_items bigint[];
    l credit.line;
    r credit.entry_result;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    PERFORM credit._require_id(payment_ref, 'payment_ref');
    v_amount := credit._money(amount, 'amount', 'positive');
    IF v_refs IS NOT NULL THEN
        PERFORM credit._require_refs(v_refs, 'applies_to');
    END IF;

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN ('line_not_found', NULL, NULL, NULL, false)::credit.entry_result;
    END IF;
    r := credit._replay_entry(l, 'CREDIT', payment_ref, v_amount);
    IF r.code = 'ok' AND (SELECT e.applies_to FROM credit.ledger_entry e WHERE e.id = r.ledger_entry_id)
                         IS DISTINCT FROM v_refs THEN
        RETURN ('exists_with_different_terms', r.ledger_entry_id, r.outstanding, r.available,
                false)::credit.entry_result;
    ELSIF r.code IS NOT NULL THEN
        RETURN r;
    END IF;

    IF v_refs IS NOT NULL THEN
        -- The DEBIT of each ref, in the order given; one probe of the ledger's key each.
        SELECT array_agg(d.id ORDER BY t.i) FILTER (WHERE d.id IS NOT NULL) INTO v_items
          FROM unnest(v_refs) WITH ORDINALITY AS t(ref, i)
          LEFT JOIN LATERAL (SELECT e.id FROM credit.ledger_entry e
                              WHERE e.line_id = l.id AND e.entry_type = 'DEBIT' AND e.ref = t.ref OFFSET 0) d ON true;
        IF cardinality(v_items) IS DISTINCT FROM cardinality(v_refs) THEN
            RETURN ('debit_not_found', NULL, l.outstanding, credit._available(l), false)::credit.entry_result;
        END IF;
    END IF;
    RETURN credit._post_entry(l, 'CREDIT', payment_ref, v_amount, NULL, NULL, v_items, v_refs);
END
$$;
REVOKE ALL ON FUNCTION credit.record_payment(text, text, text, numeric, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.record_payment(text, text, text, numeric, text[]) TO credit_app;
