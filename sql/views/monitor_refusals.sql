SET ROLE credit_owner;

-- Refused reservations over the last hour, by code.
CREATE OR REPLACE VIEW credit.monitor_refusals AS
SELECT f.code, count(*) AS refusals, count(DISTINCT (f.wholesaler_id, f.retailer_id)) AS lines,
       sum(f.amount) AS amount_refused, max(f.created_at) AS last_at
  FROM credit.refusal f
 WHERE f.created_at > now() - interval '1 hour'
 GROUP BY f.code;
GRANT SELECT ON credit.monitor_refusals TO credit_auditor;
