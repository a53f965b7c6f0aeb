SET ROLE credit_owner;

-- The line's ledger between two dates (inclusive, in the session's time zone)
-- with a running balance, after an OPENING row carrying the balance before
-- from_date. balance is outstanding as of that entry.
CREATE OR REPLACE FUNCTION credit.statement(wholesaler_id text, retailer_id text, from_date date, to_date date)
RETURNS TABLE (entry_id bigint, created_at timestamptz, entry_type text, ref text, memo text,
               due_date date, amount numeric, balance numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_line bigint;
BEGIN
    IF from_date IS NULL OR to_date IS NULL OR NOT isfinite(from_date) OR NOT isfinite(to_date) THEN
        RAISE USING ERRCODE = '22023', MESSAGE = 'from_date and to_date must be finite dates';
    ELSIF from_date > to_date THEN
        RAISE USING ERRCODE = '22023',
            MESSAGE = format('from_date (%s) must not be after to_date (%s)', from_date, to_date);
    END IF;
    v_line := credit._line_id(wholesaler_id, retailer_id);

    RETURN QUERY
    WITH e AS (
        SELECT x.id, x.created_at, x.entry_type, x.ref, x.memo, x.due_date,
               CASE WHEN x.entry_type IN ('CREDIT', 'REVERSAL') THEN -x.amount ELSE x.amount END AS delta
          FROM credit.ledger_entry x
         WHERE x.line_id = v_line AND x.created_at < (to_date + 1)::timestamptz
    ), opening AS (
        SELECT coalesce(sum(e.delta), 0) AS balance FROM e WHERE e.created_at < from_date::timestamptz
    )
    SELECT NULL::bigint, from_date::timestamptz, 'OPENING'::text, NULL::text, NULL::text, NULL::date,
           o.balance, o.balance
      FROM opening o
    UNION ALL
    SELECT e.id, e.created_at, e.entry_type, e.ref, e.memo, e.due_date, e.delta,
           o.balance + sum(e.delta) OVER (ORDER BY e.id)
      FROM e, opening o
     WHERE e.created_at >= from_date::timestamptz
     ORDER BY 1 NULLS FIRST;
END
$$;
REVOKE ALL ON FUNCTION credit.statement(text, text, date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.statement(text, text, date, date) TO credit_app, credit_auditor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.statement(text, text, date, date) IS $doc$A line's ledger between two dates, inclusive (days in the session's time zone), with a running balance:
first an OPENING row with the balance before from_date, then each entry in id order. A report: its cost
grows with the line's ledger up to to_date.
Arguments:
  wholesaler_id, retailer_id: the line.
  from_date, to_date: the first and last day, finite dates, from_date not after to_date.
Columns:
  entry_id: the ledger entry's id; NULL on the OPENING row.
  created_at: when the entry was written; from_date's midnight on the OPENING row.
  entry_type: DEBIT, CREDIT, REVERSAL, ADJUSTMENT, or OPENING.
  ref: the entry's idempotency key (order_ref, payment_ref, reversal_ref or adjustment_ref).
  memo: the reason given with a reversal or adjustment.
  due_date: a DEBIT's (or a positive ADJUSTMENT's) due date.
  amount: the entry's effect on the balance: DEBIT positive, CREDIT and REVERSAL negative, ADJUSTMENT as
    signed; the balance before from_date on the OPENING row.
  balance: outstanding as of this entry.
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  P0002: no line for (wholesaler_id, retailer_id); the message starts with line_not_found.$doc$;
