SET ROLE credit_owner;

-- Refused reservations over the last hour, by code.
CREATE OR REPLACE VIEW credit.monitor_refusals AS
SELECT f.code, count(*) AS refusals, count(DISTINCT (f.wholesaler_id, f.retailer_id)) AS lines,
       sum(f.amount) AS amount_refused, max(f.created_at) AS last_at
  FROM credit.refusal f
 WHERE f.created_at > now() - interval '1 hour'
 GROUP BY f.code;
GRANT SELECT ON credit.monitor_refusals TO credit_auditor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON VIEW credit.monitor_refusals IS $doc$Refused reservations over the last hour, by code (from the refusal log that reserve_credit writes).$doc$;
COMMENT ON COLUMN credit.monitor_refusals.code IS $doc$The refusal's code.$doc$;
COMMENT ON COLUMN credit.monitor_refusals.refusals IS $doc$How many reservations were refused with it.$doc$;
COMMENT ON COLUMN credit.monitor_refusals.lines IS $doc$On how many distinct lines (wholesaler_id, retailer_id).$doc$;
COMMENT ON COLUMN credit.monitor_refusals.amount_refused IS $doc$The sum of the amounts refused.$doc$;
COMMENT ON COLUMN credit.monitor_refusals.last_at IS $doc$When the last one was refused.$doc$;
