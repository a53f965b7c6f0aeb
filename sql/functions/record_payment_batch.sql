SET ROLE credit_owner;

-- Many payments in one call and one commit (SPEC "Bulk calls"): a bank
-- statement. Every item is checked before anything is written, every line is
-- locked once in ascending id order, and then each item runs through
-- record_payment itself, in array order, which finds its line locked by this
-- transaction already: one implementation of payments and of the allocation
-- rule (credit._allocate_credit), so item i gets exactly what the single call
-- would have given it after items 1..i-1.
CREATE OR REPLACE FUNCTION credit.record_payment_batch(
    wholesaler_ids text[], retailer_ids text[], payment_refs text[], amounts numeric[])
RETURNS TABLE (item integer, code text, ledger_entry_id bigint, outstanding numeric, available numeric,
               replayed boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_i integer;
    v_w text;
    v_r text;
    v_o text;
    v_a numeric;
BEGIN
    IF current_setting('credit.lock_timeout', true) <> '' THEN
        PERFORM credit._apply_lock_timeout();
    END IF;
    PERFORM credit._check_batch(wholesaler_ids, retailer_ids, payment_refs, 'payment_refs', amounts, false);
    PERFORM credit._lock_lines(wholesaler_ids, retailer_ids);
    FOR v_i, v_w, v_r, v_o, v_a IN
        SELECT t.i::integer, t.w, t.r, t.o, t.a
          FROM unnest(wholesaler_ids, retailer_ids, payment_refs, amounts) WITH ORDINALITY AS t(w, r, o, a, i)
         ORDER BY t.i
    LOOP
        RETURN QUERY SELECT v_i, s.* FROM credit.record_payment(v_w, v_r, v_o, v_a) AS s;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION credit.record_payment_batch(text[], text[], text[], numeric[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.record_payment_batch(text[], text[], text[], numeric[]) TO credit_app;
