SET ROLE credit_owner;

-- Backends waiting now for a credit line's row lock, and the longest wait.
-- A row lock wait shows in pg_locks (PostgreSQL 14+ for waitstart) in one of
-- two ways: the first waiter holds the row's tuple lock (granted, on
-- credit.line) and waits for the holder's transaction id (ShareLock on
-- transactionid, not granted); every later waiter waits for that tuple lock
-- (not granted, on credit.line). Both are counted; waits on anything else
-- (another table, a hold's key) are not. Cost: one pass over pg_locks,
-- O(locks held in the cluster), bounded by max_connections x
-- max_locks_per_transaction. pg_locks is readable by every role: the
-- monitoring role needs no pg_monitor for this.
CREATE OR REPLACE VIEW credit.monitor_lock_waits AS
WITH line_lock AS (
    SELECT k.pid, k.granted, k.waitstart FROM pg_catalog.pg_locks k
     WHERE k.locktype = 'tuple' AND k.relation = 'credit.line'::regclass
       AND k.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database())),
waiter AS (
    SELECT t.pid, t.waitstart FROM line_lock t WHERE NOT t.granted
    UNION ALL
    SELECT x.pid, x.waitstart FROM pg_catalog.pg_locks x
     WHERE x.locktype = 'transactionid' AND NOT x.granted
       AND x.pid IN (SELECT t.pid FROM line_lock t WHERE t.granted))
SELECT count(*) AS waiters,
       coalesce(extract(epoch FROM clock_timestamp() - min(w.waitstart)), 0) AS longest_wait_seconds
  FROM waiter w;
GRANT SELECT ON credit.monitor_lock_waits TO credit_auditor, credit_monitor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON VIEW credit.monitor_lock_waits IS $doc$Backends of this database waiting now for a credit line's row lock (each waits at most the lock-wait
bound, then its call raises 55P03), and the longest wait. Waits for anything else are not counted. Cost:
one pass over pg_locks.$doc$;
COMMENT ON COLUMN credit.monitor_lock_waits.waiters IS $doc$How many backends wait for a line's row lock.$doc$;
COMMENT ON COLUMN credit.monitor_lock_waits.longest_wait_seconds IS $doc$How long the longest of them has waited, in seconds; 0 when none.$doc$;
