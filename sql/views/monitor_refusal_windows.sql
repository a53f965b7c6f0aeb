SET ROLE credit_owner;

-- Refused reservations by code in the last 5 minutes and the last hour: what
-- Prometheus alerts on (a spike is the 5-minute count against the hour's
-- rate). Every code that reserve_credit can refuse with has a row, zero when
-- quiet, so an alert's series never vanishes ('overdue' comes with the
-- receivables of v1.1). Cost: two range scans of refusal_created_idx over the
-- last hour, O(refusals in the last hour), whatever the length of history.
CREATE OR REPLACE VIEW credit.monitor_refusal_windows AS
WITH recent AS (
    SELECT f.code, f.created_at FROM credit.refusal f
     WHERE f.created_at > now() - interval '1 hour')
SELECT c.code,
       count(r.created_at) FILTER (WHERE r.created_at > now() - interval '5 minutes') AS last_5m,
       count(r.created_at) AS last_1h
  FROM (SELECT unnest(ARRAY['insufficient_credit', 'line_blocked', 'line_not_found', 'overdue'])
        UNION
        SELECT recent.code FROM recent) c (code)
  LEFT JOIN recent r ON r.code = c.code
 GROUP BY c.code;
GRANT SELECT ON credit.monitor_refusal_windows TO credit_auditor, credit_monitor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON VIEW credit.monitor_refusal_windows IS $doc$Refused reservations by code in the last 5 minutes and the last hour, for alerts (a spike is the 5-minute
count against the hour's rate). Every code reserve_credit can refuse with has a row, zero when quiet, so an
alert's series never vanishes. Cost: O(refusals in the last hour).$doc$;
COMMENT ON COLUMN credit.monitor_refusal_windows.code IS $doc$The refusal's code.$doc$;
COMMENT ON COLUMN credit.monitor_refusal_windows.last_5m IS $doc$Refusals with it in the last 5 minutes.$doc$;
COMMENT ON COLUMN credit.monitor_refusal_windows.last_1h IS $doc$Refusals with it in the last hour.$doc$;
