SET ROLE credit_owner;

-- One row per line for DBAs. overdue_amount settles payments against the oldest
-- debts first: whatever is outstanding beyond the debits not yet due is overdue.
-- active_holds and oldest_active_hold_age read the line's holds through its
-- key: their cost grows with the line's history, which an index on active
-- holds would avoid at the price of one more index write per reservation
-- (BENCHMARKS.md). reserved, outstanding and available stay O(1).
CREATE OR REPLACE VIEW credit.line_summary AS
SELECT l.id AS line_id, l.wholesaler_id, l.retailer_id, l.status, l.currency, l.credit_limit,
       v.reserved, l.outstanding,
       l.credit_limit - v.reserved - l.outstanding AS available,
       CASE WHEN l.credit_limit > 0
            THEN round(100 * (v.reserved + l.outstanding) / l.credit_limit, 2) END AS utilization_pct,
       h.active_holds,
       now() - h.oldest AS oldest_active_hold_age,
       greatest(l.outstanding - coalesce(nd.amount, 0), 0) AS overdue_amount
  FROM credit.line l
 CROSS JOIN LATERAL (SELECT credit._reserved_now(l) AS reserved) v
 CROSS JOIN LATERAL (SELECT count(*) AS active_holds, min(r.created_at) AS oldest
                       FROM credit.reservation r
                      WHERE r.line_id = l.id AND r.status = 'active'
                        AND (r.expires_at IS NULL OR r.expires_at > now())) h
 CROSS JOIN LATERAL (SELECT sum(d.amount - coalesce((SELECT sum(x.amount) FROM credit.ledger_entry x
                                                     WHERE x.debit_id = d.id), 0)) AS amount
                       FROM credit.ledger_entry d
                      WHERE d.line_id = l.id AND d.entry_type = 'DEBIT' AND d.due_date >= current_date) nd;
GRANT SELECT ON credit.line_summary TO credit_auditor;
