-- One index fewer on the hold row (BENCHMARKS.md, "What the features cost
-- reserve_credit"). reservation_expiry_idx was partial, so a hold without an
-- expiry never entered it, yet every insert and every status change still
-- opened it and compiled its predicate: 2.7% of a reservation's instructions.
-- Expiring holds are found through their line instead:
-- - a line's active holds are one range of reservation_list_idx
--   (line_id, status, id), which sweeps, _reserved_now and next_expiry read;
--   their cost follows the line's active holds, never its ended ones;
-- - the lines that may have expired holds are those whose next_expiry has
--   passed: expire_reservations and the sweep monitor scan credit.line for
--   them (O(lines), like monitor_totals already does), never the holds' history.

SET ROLE credit_owner;

DROP INDEX credit.reservation_expiry_idx;

RESET ROLE;
