SET ROLE credit_owner;

-- The last scheduled reconcile run (credit.record_reconcile): no row until
-- the first run. O(1): the newest row through the primary key.
CREATE OR REPLACE VIEW credit.monitor_reconcile AS
SELECT r.id AS run_id, r.started_at, r.finished_at, r.findings, r.findings_by_check,
       r.oldest_active_hold_at,
       r.finished_at - r.oldest_active_hold_at AS oldest_active_hold_age
  FROM credit.reconcile_run r
 ORDER BY r.id DESC
 LIMIT 1;
GRANT SELECT ON credit.monitor_reconcile TO credit_auditor, credit_monitor;
