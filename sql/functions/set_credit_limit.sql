SET ROLE credit_owner;

-- Changes a line's limit and keeps the change, with its reason, in line_event.
-- With valid_until the new limit is temporary: it applies until that moment
-- and the permanent limit applies again from then on, with no job running.
-- Without it the permanent limit changes and any temporary one ends.
-- Lowering a limit below what is already reserved and owed is allowed: nothing
-- already held is taken back, new reservations are refused until there is room.
CREATE OR REPLACE FUNCTION credit.set_credit_limit(
    wholesaler_id text, retailer_id text, credit_limit numeric, reason text, valid_until timestamptz DEFAULT NULL)
RETURNS credit.limit_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_limit numeric;
    l credit.line;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    v_limit := credit._money(credit_limit, 'credit_limit', 'non_negative');
    PERFORM credit._require_text(reason, 'reason');
    IF NOT valid_until > now() OR NOT isfinite(valid_until) THEN
        RAISE USING ERRCODE = '22023',
            MESSAGE = format('valid_until must be a finite time in the future, got %s', valid_until);
    END IF;

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN ('line_not_found', NULL, NULL, NULL, NULL)::credit.limit_result;
    END IF;
    IF valid_until IS NULL THEN
        UPDATE credit.line x SET credit_limit = v_limit, temp_limit = NULL, limit_valid_until = NULL
         WHERE x.id = l.id;
    ELSE
        UPDATE credit.line x
           SET temp_limit = v_limit, limit_valid_until = valid_until,
               next_expiry = least(x.next_expiry, valid_until)  -- reserve_credit's fast path stops then
         WHERE x.id = l.id;
    END IF;
    INSERT INTO credit.line_event (line_id, kind, old_limit, new_limit, reason, valid_until)
    VALUES (l.id, 'limit_changed', credit._active_limit(l.credit_limit, l.temp_limit, l.limit_valid_until),
            v_limit, reason, valid_until);
    PERFORM credit._event(l.wholesaler_id, l.retailer_id, 'limit_changed', NULL, v_limit, v_limit - l.reserved - l.outstanding,
        jsonb_build_object('previous_limit', credit._active_limit(l.credit_limit, l.temp_limit, l.limit_valid_until)::text,
                           'valid_until', valid_until, 'reason', reason));
    RETURN ('ok', v_limit, l.reserved, l.outstanding, v_limit - l.reserved - l.outstanding)::credit.limit_result;
END
$$;
REVOKE ALL ON FUNCTION credit.set_credit_limit(text, text, numeric, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.set_credit_limit(text, text, numeric, text, timestamptz) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.set_credit_limit(text, text, numeric, text, timestamptz) IS $doc$Changes a line's limit and keeps the change, with its reason, in the line's history. With valid_until the
new limit is temporary: it applies until that moment, and the permanent limit applies again from then on
with no job running. Without it the permanent limit changes and any temporary limit ends. A limit may drop
below what is already held and owed: holds already granted are never taken back, new reservations are
refused until there is room again.
Arguments:
  wholesaler_id, retailer_id: the line.
  credit_limit: the new limit: zero or more, at most 10^15, at most 2 decimal places.
  reason: why, kept in the line's history.
  valid_until: the end of a temporary limit, a finite time in the future; NULL: a permanent change.
Codes: ok, line_not_found
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same arguments.$doc$;
COMMENT ON TYPE credit.limit_result IS $doc$The outcome of set_credit_limit: the line's figures under its new limit.$doc$;
COMMENT ON COLUMN credit.limit_result.code IS $doc$ok or line_not_found.$doc$;
COMMENT ON COLUMN credit.limit_result.credit_limit IS $doc$The limit just set (temporary or permanent), now in force.$doc$;
COMMENT ON COLUMN credit.limit_result.reserved IS $doc$The sum of the line's active holds not past their expiry.$doc$;
COMMENT ON COLUMN credit.limit_result.outstanding IS $doc$What the retailer owes.$doc$;
COMMENT ON COLUMN credit.limit_result.available IS $doc$credit_limit - reserved - outstanding: negative when the new limit is below the exposure.$doc$;
