SET ROLE credit_owner;

-- One row per line for DBAs. credit_limit is the limit in force;
-- overdue_amount is get_available's past_due (the allocation rule's unpaid
-- items due before today). active_holds and oldest_active_hold_age read the
-- line's active holds through reservation_list_idx, overdue_amount its open
-- items: neither grows with ended holds or settled debts.
CREATE OR REPLACE VIEW credit.line_summary AS
SELECT l.id AS line_id, l.wholesaler_id, l.retailer_id, l.status, l.currency,
       round(c.credit_limit, 2) AS credit_limit, round(v.reserved, 2) AS reserved,
       round(l.outstanding, 2) AS outstanding,
       round(c.credit_limit - v.reserved - l.outstanding, 2) AS available,
       CASE WHEN c.credit_limit > 0
            THEN round(100 * (v.reserved + l.outstanding) / c.credit_limit, 2) END AS utilization_pct,
       h.active_holds,
       now() - h.oldest AS oldest_active_hold_age,
       round(p.past_due, 2) AS overdue_amount
  FROM credit.line l
 CROSS JOIN LATERAL (SELECT credit._reserved_now(l) AS reserved) v
 CROSS JOIN LATERAL (SELECT credit._active_limit(l.credit_limit, l.temp_limit, l.limit_valid_until) AS credit_limit) c
 CROSS JOIN LATERAL (SELECT coalesce(sum(o.unpaid), 0.00) AS past_due FROM credit.open_item o
                      WHERE o.line_id = l.id AND o.due_date < current_date) p
 CROSS JOIN LATERAL (SELECT count(*) AS active_holds, min(r.created_at) AS oldest
                       FROM credit.reservation r
                      WHERE r.line_id = l.id AND r.status = 'active'
                        AND (r.expires_at IS NULL OR r.expires_at > now())) h;
GRANT SELECT ON credit.line_summary TO credit_auditor;
