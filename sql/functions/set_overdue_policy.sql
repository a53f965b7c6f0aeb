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
