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
