-- Operations: a monitoring role, and a table that keeps the results of
-- scheduled reconcile runs.
--
-- credit_monitor (no login) is what a metrics exporter logs in as, through a
-- login role of the DBA's that is a member of it. It may read the monitoring
-- views (sql/functions/monitor_*.sql) and nothing else: no table, no function
-- that writes, no API call.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'credit_monitor') THEN
        CREATE ROLE credit_monitor NOLOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE EXCEPTION 'pgcredit: % cannot create the role credit_monitor', current_user
        USING ERRCODE = '42501', HINT = 'As a superuser, run: CREATE ROLE credit_monitor NOLOGIN;';
END
$roles$;

SET ROLE credit_owner;

GRANT USAGE ON SCHEMA credit TO credit_monitor;

-- One row per run of credit.record_reconcile(), which a scheduler (pg_cron:
-- `pgcredit schedule`) calls every few minutes. reconcile() and the oldest
-- active hold read whole tables, O(history): too heavy for every scrape, so a
-- scrape reads the last row here instead (O(1) through the primary key).
-- Old rows are pruned by record_reconcile itself.
CREATE TABLE credit.reconcile_run (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at            timestamptz NOT NULL,
    finished_at           timestamptz NOT NULL,
    findings              integer NOT NULL CHECK (findings >= 0),
    -- {check_name: number of findings}, only checks that found something.
    findings_by_check     jsonb NOT NULL DEFAULT '{}',
    -- created_at of the oldest hold that was active (and unexpired) at the run.
    oldest_active_hold_at timestamptz
);

-- A helper of 0003's function files that the reads now write out in place
-- (a SECURITY DEFINER call cost get_available a quarter of its time).
-- line_summary read it; the function files recreate the view.
DROP VIEW IF EXISTS credit.line_summary;
DROP FUNCTION IF EXISTS credit._past_due(bigint);

RESET ROLE;
