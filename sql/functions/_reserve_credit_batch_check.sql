SET ROLE credit_owner;

-- reserve_credit_batch's whole input check, on its own: the batch calls it
-- first, and a PL/Proxy proxy calls it on one partition before sending any
-- part of a batch, since each partition commits its part by itself
-- (PARTITIONING.md). SECURITY DEFINER: the proxy's login may call it, not
-- what it calls.
CREATE OR REPLACE FUNCTION credit._reserve_credit_batch_check(
    wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[],
    expires_in interval DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_problem text;
BEGIN
    PERFORM credit._check_batch(wholesaler_ids, retailer_ids, order_refs, 'order_refs', amounts, false);
    v_problem := credit._expires_in_problem(expires_in);
    IF v_problem IS NOT NULL THEN
        RAISE USING ERRCODE = '22023', MESSAGE = v_problem;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION credit._reserve_credit_batch_check(text[], text[], text[], numeric[], interval) FROM PUBLIC;
