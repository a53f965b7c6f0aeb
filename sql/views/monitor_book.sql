SET ROLE credit_owner;

-- The book by currency and line status, for dashboards and alerts (the
-- exporter's pgcredit_* line metrics). One pass over credit.line: O(lines),
-- each line O(1) (_reserved_now reads holds only of a line with a hold past
-- its expiry awaiting a sweep), plus one pass over the open items that are
-- past due (settled items are not open items: never the ledger). credit_limit
-- is the limit in force; utilization is (reserved + outstanding) / that limit;
-- a line at limit 0 with any exposure counts as over 90%.
CREATE OR REPLACE VIEW credit.monitor_book AS
SELECT l.currency, l.status,
       count(*) AS lines,
       sum(v.credit_limit) AS credit_limit,
       sum(v.reserved) AS reserved,
       sum(l.outstanding) AS outstanding,
       coalesce(sum(p.past_due), 0.00) AS past_due,
       count(*) FILTER (WHERE v.reserved + l.outstanding > 0
                          AND v.reserved + l.outstanding >= 0.9 * v.credit_limit) AS lines_over_90pct,
       max(CASE WHEN v.credit_limit > 0
                THEN round(100 * (v.reserved + l.outstanding) / v.credit_limit, 2) END) AS max_utilization_pct
  FROM credit.line l
 CROSS JOIN LATERAL (SELECT credit._reserved_now(l) AS reserved,
                            credit._active_limit(l.credit_limit, l.temp_limit, l.limit_valid_until) AS credit_limit) v
  LEFT JOIN (SELECT o.line_id, sum(o.unpaid) AS past_due FROM credit.open_item o
              WHERE o.due_date < current_date GROUP BY o.line_id) p ON p.line_id = l.id
 GROUP BY l.currency, l.status;
GRANT SELECT ON credit.monitor_book TO credit_auditor, credit_monitor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON VIEW credit.monitor_book IS $doc$The book by currency and line status, for dashboards and alerts (the exporter's pgcredit_* line metrics).
Aggregates only: no wholesaler or retailer ids. One pass over the lines and the past-due open items.$doc$;
COMMENT ON COLUMN credit.monitor_book.currency IS $doc$The lines' currency; amounts of different currencies are never added.$doc$;
COMMENT ON COLUMN credit.monitor_book.status IS $doc$active or blocked.$doc$;
COMMENT ON COLUMN credit.monitor_book.lines IS $doc$The number of lines.$doc$;
COMMENT ON COLUMN credit.monitor_book.credit_limit IS $doc$The sum of the limits in force.$doc$;
COMMENT ON COLUMN credit.monitor_book.reserved IS $doc$The sum of active holds not past their expiry.$doc$;
COMMENT ON COLUMN credit.monitor_book.outstanding IS $doc$The sum of what the retailers owe.$doc$;
COMMENT ON COLUMN credit.monitor_book.past_due IS $doc$The unpaid amount of items due before today.$doc$;
COMMENT ON COLUMN credit.monitor_book.lines_over_90pct IS $doc$Lines whose reserved + outstanding is at least 90% of their limit in force (a line at limit 0 with any exposure counts).$doc$;
COMMENT ON COLUMN credit.monitor_book.max_utilization_pct IS $doc$The highest utilization among the lines with a limit above 0, in percent.$doc$;
