SET ROLE credit_owner;

-- A blocked line refuses new reservations; everything else still works.
CREATE OR REPLACE FUNCTION credit.block_line(wholesaler_id text, retailer_id text, reason text)
RETURNS credit.status_result
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
    SELECT * FROM credit._set_status(wholesaler_id, retailer_id, 'blocked', reason)
$$;
REVOKE ALL ON FUNCTION credit.block_line(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.block_line(text, text, text) TO credit_app;
