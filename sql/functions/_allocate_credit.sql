SET ROLE credit_owner;

-- One credit on one line, the line's figures moved too: the allocation rule
-- (credit._allocate_credits), then the line's unapplied, oldest unpaid due
-- date and outstanding (by outstanding_delta). For _build_open_items, which
-- replays a v1 ledger (each settlement dated at its entry); posting calls
-- credit._allocate_credits itself.
-- v1.2 added first_items, a list; first_item (one item) is what the release
-- before passes. An argument is only ever added at the end, with a default,
-- internal functions' too: a call of the release before that is running when
-- the function files commit plans its next statements anew, against these
-- functions, and must still find one that takes its arguments.
DROP FUNCTION IF EXISTS credit._allocate_credit(bigint, numeric, bigint, timestamptz, numeric);
CREATE OR REPLACE FUNCTION credit._allocate_credit(
    line_id bigint, amount numeric, first_item bigint DEFAULT NULL, at timestamptz DEFAULT now(),
    outstanding_delta numeric DEFAULT 0, first_items bigint[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_left numeric;
BEGIN
    SELECT s.lefts[1] INTO v_left
      FROM credit._allocate_credits(ARRAY[line_id], ARRAY[amount],
                          CASE WHEN first_item IS NULL THEN first_items ELSE first_item || first_items END, at) s;
    UPDATE credit.line l
       SET unapplied = l.unapplied + v_left,
           oldest_unpaid_due = (SELECT min(x.due_date) FROM credit.open_item x
                                 WHERE x.line_id = _allocate_credit.line_id),
           outstanding = l.outstanding + outstanding_delta
     WHERE l.id = _allocate_credit.line_id;
END
$$;
REVOKE ALL ON FUNCTION credit._allocate_credit(bigint, numeric, bigint, timestamptz, numeric, bigint[]) FROM PUBLIC;
