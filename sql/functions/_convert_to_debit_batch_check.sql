SET ROLE credit_owner;

-- convert_to_debit_batch's whole input check, on its own (see
-- _reserve_credit_batch_check).
CREATE OR REPLACE FUNCTION credit._convert_to_debit_batch_check(
    wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM credit._check_batch(wholesaler_ids, retailer_ids, order_refs, 'order_refs', amounts, true);
END
$$;
REVOKE ALL ON FUNCTION credit._convert_to_debit_batch_check(text[], text[], text[], numeric[]) FROM PUBLIC;
