-- The functions a partition has beyond a single server's, applied by
-- `pgcredit migrate --partitions` after the migrations (sql/migrations, then
-- sql/proxy/partition_migrations) and the function files.
-- The login the proxy connects as (credit_proxy, a member of credit_app and
-- credit_auditor) is created by migrate before this file runs.

SET ROLE credit_owner;

-- Lines stored here that the proxy would look for elsewhere: a line opened on
-- the partition directly, a partition listed in the wrong place, or a change
-- of hashing. The proxy's reconcile() adds these findings to the partition's.
CREATE OR REPLACE FUNCTION credit._misplaced_lines()
RETURNS TABLE (check_name text, wholesaler_id text, retailer_id text,
               expected numeric, actual numeric, detail text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'line_partition', l.wholesaler_id, l.retailer_id, h.home::numeric, c.partition_index::numeric,
           format('line stored on partition %s of %s; the proxy routes it to partition %s',
                  c.partition_index, c.partition_count, h.home)
      FROM credit.partition_config c
     CROSS JOIN credit.line l
     CROSS JOIN LATERAL (SELECT credit._line_hash(l.wholesaler_id, l.retailer_id) & (c.partition_count - 1) AS home) h
     WHERE h.home <> c.partition_index
$$;
REVOKE ALL ON FUNCTION credit._misplaced_lines() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit._misplaced_lines() TO credit_auditor;

RESET ROLE;
