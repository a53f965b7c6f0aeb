SET ROLE credit_owner;

-- Refuse new reservations (code 'overdue') while the line's unpaid items due
-- more than grace_days ago exceed max_overdue_amount. grace_days NULL removes
-- the policy. Every change is kept in line_event.
CREATE OR REPLACE FUNCTION credit.set_overdue_policy(
    wholesaler_id text, retailer_id text, grace_days integer,
    max_overdue_amount numeric DEFAULT 0, reason text DEFAULT NULL)
RETURNS credit.overdue_policy_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_max numeric;
    l credit.line;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    IF grace_days NOT BETWEEN 0 AND 365 THEN
        RAISE USING ERRCODE = '22023',
            MESSAGE = format('grace_days must be between 0 and 365 (or NULL to remove the policy), got %s', grace_days);
    END IF;
    IF grace_days IS NOT NULL THEN
        v_max := credit._money(max_overdue_amount, 'max_overdue_amount', 'non_negative');
    END IF;
    IF reason IS NOT NULL THEN
        PERFORM credit._require_text(reason, 'reason');
    END IF;

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN ('line_not_found', NULL, NULL)::credit.overdue_policy_result;
    END IF;
    UPDATE credit.line x
       SET overdue_grace_days = grace_days, max_overdue_amount = v_max,
           next_expiry = least(x.next_expiry, credit._arrears_from(x.oldest_unpaid_due, grace_days))
     WHERE x.id = l.id;
    INSERT INTO credit.line_event (line_id, kind, reason, grace_days, max_overdue_amount)
    VALUES (l.id, 'overdue_policy', reason, grace_days, v_max);
    PERFORM credit._event(l.wholesaler_id, l.retailer_id, 'overdue_policy_set', NULL, v_max, credit._available(l),
        jsonb_build_object('grace_days', grace_days, 'max_overdue_amount', v_max::text, 'reason', reason));
    -- The new policy may start or end the line's refusals at once.
    PERFORM credit._overdue_event(l.id);
    RETURN ('ok', grace_days, v_max)::credit.overdue_policy_result;
END
$$;
REVOKE ALL ON FUNCTION credit.set_overdue_policy(text, text, integer, numeric, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.set_overdue_policy(text, text, integer, numeric, text) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.set_overdue_policy(text, text, integer, numeric, text) IS $doc$Sets a line's overdue policy: reserve_credit and can_reserve refuse with overdue while the unpaid amount
of items due more than grace_days ago exceeds max_overdue_amount. The refusal starts by the passing of time
alone (no job) and ends when payments bring the amount down. Every change is kept in the line's history.
Arguments:
  wholesaler_id, retailer_id: the line.
  grace_days: days after an item's due date before it counts, 0 to 365; NULL removes the policy.
  max_overdue_amount: the overdue amount tolerated: zero or more, at most 2 decimal places.
  reason: why, kept in the line's history; NULL for none.
Codes: ok, line_not_found
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same arguments.$doc$;
COMMENT ON TYPE credit.overdue_policy_result IS $doc$The outcome of set_overdue_policy: the policy now in force.$doc$;
COMMENT ON COLUMN credit.overdue_policy_result.code IS $doc$ok or line_not_found.$doc$;
COMMENT ON COLUMN credit.overdue_policy_result.grace_days IS $doc$The grace period in days; NULL: no policy.$doc$;
COMMENT ON COLUMN credit.overdue_policy_result.max_overdue_amount IS $doc$The overdue amount tolerated; NULL: no policy.$doc$;
