SET ROLE credit_owner;

-- Receivables aging as of the end of a day (session time zone): per line with
-- anything unpaid or unapplied, the unpaid amount of its items by days past
-- due (as_of - due_date), unapplied credit, and outstanding as of that day.
-- Only ledger entries and settlements made on or before as_of count, so a
-- month-end report can be reproduced later. The allocation is not computed
-- again here: it is read from credit.settlement, which the rule wrote when
-- the money moved. A report: it reads the selected lines' whole history.
CREATE OR REPLACE FUNCTION credit.aging(
    as_of date DEFAULT current_date, wholesaler_id text DEFAULT NULL, retailer_id text DEFAULT NULL)
RETURNS SETOF credit.aging_row
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_end timestamptz;
BEGIN
    IF as_of IS NULL OR NOT isfinite(as_of) THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('as_of must be a finite date, got %s', coalesce(as_of::text, 'NULL'));
    END IF;
    IF aging.wholesaler_id IS NOT NULL THEN
        PERFORM credit._require_id(aging.wholesaler_id, 'wholesaler_id');
    END IF;
    IF aging.retailer_id IS NOT NULL THEN
        PERFORM credit._require_id(aging.retailer_id, 'retailer_id');
    END IF;
    v_end := (as_of + 1)::timestamptz;

    RETURN QUERY
    WITH lines AS (
        SELECT l.id, l.wholesaler_id, l.retailer_id, l.currency FROM credit.line l
         WHERE (aging.wholesaler_id IS NULL OR l.wholesaler_id = aging.wholesaler_id)
           AND (aging.retailer_id IS NULL OR l.retailer_id = aging.retailer_id)
    ), settled AS (
        SELECT s.item_id, sum(s.amount) AS amount
          FROM credit.settlement s JOIN lines ON lines.id = s.line_id
         WHERE s.created_at < v_end
         GROUP BY s.item_id
    ), entries AS (
        SELECT e.line_id,
               e.entry_type = 'DEBIT' OR e.entry_type = 'ADJUSTMENT' AND e.amount > 0 AS is_item,
               as_of - coalesce(e.due_date, e.created_at::date) AS days,
               coalesce(e.due_date, e.created_at::date) AS due_date,
               abs(e.amount) AS amount,
               coalesce(st.amount, 0) AS settled
          FROM credit.ledger_entry e
          JOIN lines ON lines.id = e.line_id
          LEFT JOIN settled st ON st.item_id = e.id
         WHERE e.created_at < v_end
    ), per_line AS (
        SELECT x.line_id,
               coalesce(sum(x.amount - x.settled) FILTER (WHERE x.is_item AND x.days <= 0), 0) AS not_due,
               coalesce(sum(x.amount - x.settled) FILTER (WHERE x.is_item AND x.days BETWEEN 1 AND 30), 0) AS d30,
               coalesce(sum(x.amount - x.settled) FILTER (WHERE x.is_item AND x.days BETWEEN 31 AND 60), 0) AS d60,
               coalesce(sum(x.amount - x.settled) FILTER (WHERE x.is_item AND x.days BETWEEN 61 AND 90), 0) AS d90,
               coalesce(sum(x.amount - x.settled) FILTER (WHERE x.is_item AND x.days > 90), 0) AS over90,
               -- money in the retailer's favour less what it has settled
               coalesce(sum(x.amount) FILTER (WHERE NOT x.is_item), 0)
                 - coalesce(sum(x.settled) FILTER (WHERE x.is_item), 0) AS unapplied,
               min(x.due_date) FILTER (WHERE x.is_item AND x.amount > x.settled) AS oldest
          FROM entries x
         GROUP BY x.line_id
    )
    SELECT lines.wholesaler_id, lines.retailer_id, lines.currency,
           (p.not_due)::numeric(1000, 2), (p.d30)::numeric(1000, 2), (p.d60)::numeric(1000, 2), (p.d90)::numeric(1000, 2), (p.over90)::numeric(1000, 2),
           (p.unapplied)::numeric(1000, 2), (p.not_due + p.d30 + p.d60 + p.d90 + p.over90 - p.unapplied)::numeric(1000, 2), p.oldest
      FROM per_line p JOIN lines ON lines.id = p.line_id
     WHERE p.oldest IS NOT NULL OR p.unapplied <> 0
     ORDER BY lines.wholesaler_id, lines.retailer_id;
END
$$;
REVOKE ALL ON FUNCTION credit.aging(date, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.aging(date, text, text) TO credit_app, credit_auditor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.aging(date, text, text) IS $doc$Receivables aging as of the end of a day: per line with anything unpaid or unapplied, the unpaid amounts by
days past due (as_of - due_date), unapplied credit and outstanding, counting only entries and settlements
made on or before as_of, so a month-end report can be reproduced later. The buckets less unapplied credit
equal outstanding as of that day. A report: it reads the selected lines' history. Rows by wholesaler_id,
retailer_id.
Arguments:
  as_of: the day (its end, in the session's time zone), a finite date.
  wholesaler_id: only this wholesaler's lines; NULL: every wholesaler.
  retailer_id: only this retailer's lines; NULL: every retailer.
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.$doc$;
COMMENT ON TYPE credit.aging_row IS $doc$One line of aging: what it owes by days past due, as of a day.$doc$;
COMMENT ON COLUMN credit.aging_row.wholesaler_id IS $doc$The line's wholesaler.$doc$;
COMMENT ON COLUMN credit.aging_row.retailer_id IS $doc$The line's retailer.$doc$;
COMMENT ON COLUMN credit.aging_row.currency IS $doc$The line's ISO 4217 currency.$doc$;
COMMENT ON COLUMN credit.aging_row.not_due IS $doc$Unpaid amount of items not yet due (due on as_of or later).$doc$;
COMMENT ON COLUMN credit.aging_row.days_1_30 IS $doc$Unpaid amount of items 1 to 30 days past due.$doc$;
COMMENT ON COLUMN credit.aging_row.days_31_60 IS $doc$Unpaid amount of items 31 to 60 days past due.$doc$;
COMMENT ON COLUMN credit.aging_row.days_61_90 IS $doc$Unpaid amount of items 61 to 90 days past due.$doc$;
COMMENT ON COLUMN credit.aging_row.days_over_90 IS $doc$Unpaid amount of items more than 90 days past due.$doc$;
COMMENT ON COLUMN credit.aging_row.unapplied_credit IS $doc$Money in the retailer's favour that no item has used yet.$doc$;
COMMENT ON COLUMN credit.aging_row.outstanding IS $doc$The buckets less unapplied credit: what the line owed at the end of as_of.$doc$;
COMMENT ON COLUMN credit.aging_row.oldest_unpaid_due_date IS $doc$The due date of the oldest unpaid item; NULL when nothing is unpaid.$doc$;
