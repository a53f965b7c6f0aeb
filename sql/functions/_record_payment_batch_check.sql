SET ROLE credit_owner;

-- record_payment_batch's whole input check, on its own (see
-- _reserve_credit_batch_check).
CREATE OR REPLACE FUNCTION credit._record_payment_batch_check(
    wholesaler_ids text[], retailer_ids text[], payment_refs text[], amounts numeric[])
RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM credit._check_batch(wholesaler_ids, retailer_ids, payment_refs, 'payment_refs', amounts, false);
END
$$;
REVOKE ALL ON FUNCTION credit._record_payment_batch_check(text[], text[], text[], numeric[]) FROM PUBLIC;
