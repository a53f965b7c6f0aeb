-- A hold row that costs less to write (BENCHMARKS.md): every index, foreign
-- key and domain on credit.reservation is work done by each reservation, even
-- an index the new row never enters (it is opened, locked and its predicate
-- compiled on every insert).
--
-- - One index does the work of three: holds are found by their key
--   (line_id, order_ref), now the primary key, and expiring holds by
--   reservation_expiry_idx, which holds that never expire do not enter. The id
--   stays the reservation_id that callers see, without an index of its own.
-- - The links between a converted hold and its DEBIT (reservation.debit_entry_id,
--   ledger_entry.reservation_id) lose their foreign keys; reconcile() checks
--   both directions (converted_hold_debit, debit_hold_link).
-- - The hold's amount and status and the line's reserved total lose their
--   domains: the functions validate before they write, and reconcile() checks
--   the rows (hold_amount, hold_state, reserved_total).

SET ROLE credit_owner;

-- The views read these columns; the function files recreate them after migrating.
DROP VIEW IF EXISTS credit.line_summary, credit.monitor_totals;

ALTER TABLE credit.ledger_entry DROP CONSTRAINT ledger_entry_reservation_id_fkey;
ALTER TABLE credit.reservation DROP CONSTRAINT reservation_debit_entry_id_fkey;
ALTER TABLE credit.reservation
    DROP CONSTRAINT reservation_pkey,
    DROP CONSTRAINT reservation_line_id_order_ref_key,
    ADD CONSTRAINT reservation_pkey PRIMARY KEY (line_id, order_ref);

DROP INDEX credit.reservation_active_idx;
DROP INDEX credit.reservation_due_expiry_idx;
-- Per-line and global sweeps, next_expiry, and holds awaiting a sweep.
CREATE INDEX reservation_expiry_idx ON credit.reservation (line_id, expires_at)
    WHERE status = 'active' AND expires_at IS NOT NULL;

ALTER TABLE credit.reservation ALTER COLUMN amount TYPE numeric, ALTER COLUMN status TYPE text;
ALTER TABLE credit.line ALTER COLUMN reserved TYPE numeric;
DROP DOMAIN credit.amount_positive;
DROP DOMAIN credit.hold_status;

-- Lock waits are bounded by each function's SET lock_timeout clause now.
DROP FUNCTION IF EXISTS credit._bound_lock_wait();
DROP FUNCTION IF EXISTS credit._end_lock_wait(text);

RESET ROLE;
