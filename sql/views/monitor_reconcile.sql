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

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON VIEW credit.monitor_reconcile IS $doc$The last scheduled reconcile run (record_reconcile; `pgcredit schedule` runs it every 10 minutes): no row
until the first. O(1).$doc$;
COMMENT ON COLUMN credit.monitor_reconcile.run_id IS $doc$The run's id, growing with each run.$doc$;
COMMENT ON COLUMN credit.monitor_reconcile.started_at IS $doc$When the run started.$doc$;
COMMENT ON COLUMN credit.monitor_reconcile.finished_at IS $doc$When it finished: how old the proof is.$doc$;
COMMENT ON COLUMN credit.monitor_reconcile.findings IS $doc$The number of findings; 0: healthy.$doc$;
COMMENT ON COLUMN credit.monitor_reconcile.findings_by_check IS $doc${check_name: number of findings}, for the checks that found something.$doc$;
COMMENT ON COLUMN credit.monitor_reconcile.oldest_active_hold_at IS $doc$When the oldest hold active at the run (and not past its expiry) was granted.$doc$;
COMMENT ON COLUMN credit.monitor_reconcile.oldest_active_hold_age IS $doc$finished_at - oldest_active_hold_at.$doc$;
