SET ROLE credit_owner;

-- Runs reconcile() and keeps the outcome in credit.reconcile_run, with the
-- oldest active hold, for the exporter and `pgcredit status` to read at no
-- cost. Both read whole tables (O(history)), so this runs on a schedule
-- (`pgcredit schedule`: every 10 minutes), never at scrape time. Runs older
-- than `keep` are pruned; the newest run is always kept. Returns the number
-- of findings. It takes no locks that writers wait for (reads only, plus its
-- own table).
CREATE OR REPLACE FUNCTION credit.record_reconcile(keep interval DEFAULT '7 days')
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_started timestamptz := clock_timestamp();
    v_by_check jsonb;
    v_findings integer;
    v_oldest timestamptz;
BEGIN
    IF keep IS NULL OR NOT isfinite(keep) OR keep <= interval '0' THEN
        RAISE USING ERRCODE = '22023',
            MESSAGE = format('keep must be a positive finite interval, got %s', coalesce(keep::text, 'NULL'));
    END IF;
    SELECT coalesce(jsonb_object_agg(c.check_name, c.n), '{}'), coalesce(sum(c.n), 0)::integer
      INTO v_by_check, v_findings
      FROM (SELECT f.check_name, count(*) AS n FROM credit.reconcile() f GROUP BY f.check_name) c;
    SELECT min(r.created_at) INTO v_oldest FROM credit.reservation r
     WHERE r.status = 'active' AND (r.expires_at IS NULL OR r.expires_at > now());
    INSERT INTO credit.reconcile_run (started_at, finished_at, findings, findings_by_check, oldest_active_hold_at)
    VALUES (v_started, clock_timestamp(), v_findings, v_by_check, v_oldest);
    DELETE FROM credit.reconcile_run x WHERE x.finished_at < now() - keep;
    RETURN v_findings;
END
$$;
REVOKE ALL ON FUNCTION credit.record_reconcile(interval) FROM PUBLIC;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.record_reconcile(interval) IS $doc$Runs reconcile() and keeps the outcome, with the creation time of the oldest active hold, as one row that
credit.monitor_reconcile shows, so that the exporter and `pgcredit status` read it at no cost. It reads
whole tables, so it runs on a schedule (`pgcredit schedule`: every 10 minutes), never at scrape time. Runs
older than keep are deleted; the newest run is always kept. For the owner (the scheduler's job).
Arguments:
  keep: how long to keep past runs: a positive finite interval.
Returns: the number of findings of this run (0: healthy).
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.$doc$;
