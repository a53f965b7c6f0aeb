SET ROLE credit_owner;

-- Brings a locked line up to date with the clock: marks up to max_count
-- (NULL: all) of its expired holds 'expired' and takes what remained of
-- them (amount less what was shipped) out of its reserved total, as released, ends a temporary limit whose time is up, and sets
-- next_expiry to the next moment the line changes by time alone (see
-- migration 0003). Writes the time-driven events of these changes, oldest
-- moment first, each with the moment it took effect (effective_at) and the
-- line's available after the sweep; and overdue_began if the days that
-- passed started the line's refusals. The caller holds the line's row lock.
CREATE OR REPLACE FUNCTION credit._sweep_line(line_id bigint, max_count integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
    v_amount numeric;
    v_refs text[];
    v_amounts numeric[];
    v_moments timestamptz[];
    v_before credit.line;
    v_after credit.line;
    e record;
BEGIN
    SELECT * INTO v_before FROM credit.line x WHERE x.id = _sweep_line.line_id;
    WITH gone AS (
        UPDATE credit.reservation r
           SET status = 'expired', expired_at = now(),
               released_amount = r.amount - coalesce(r.converted_amount, 0)
         WHERE r.line_id = _sweep_line.line_id
           AND r.order_ref IN (SELECT x.order_ref FROM credit.reservation x
                                WHERE x.line_id = _sweep_line.line_id AND x.status = 'active'
                                  AND x.expires_at <= now()
                                ORDER BY x.expires_at LIMIT max_count)
        RETURNING r.order_ref, r.released_amount, r.expires_at)
    SELECT count(*)::integer, coalesce(sum(gone.released_amount), 0), array_agg(gone.order_ref),
           array_agg(gone.released_amount), array_agg(gone.expires_at)
      INTO v_count, v_amount, v_refs, v_amounts, v_moments FROM gone;

    UPDATE credit.line l
       SET reserved = l.reserved - v_amount,
           temp_limit = CASE WHEN l.limit_valid_until > now() THEN l.temp_limit END,
           limit_valid_until = CASE WHEN l.limit_valid_until > now() THEN l.limit_valid_until END,
           next_expiry = least((SELECT min(x.expires_at) FROM credit.reservation x
                                 WHERE x.line_id = _sweep_line.line_id AND x.status = 'active'
                                   AND x.expires_at IS NOT NULL),
                               CASE WHEN l.limit_valid_until > now() THEN l.limit_valid_until END,
                               credit._arrears_from(l.oldest_unpaid_due, l.overdue_grace_days))
     WHERE l.id = _sweep_line.line_id
    RETURNING * INTO v_after;

    FOR e IN
        SELECT 'hold_expired' AS kind, g.ref, g.amount, g.moment, NULL::text AS previous
          FROM unnest(v_refs, v_amounts, v_moments) AS g(ref, amount, moment)
        UNION ALL
        SELECT 'temporary_limit_ended', NULL, v_after.credit_limit, v_before.limit_valid_until, v_before.temp_limit::text
         WHERE v_before.limit_valid_until <= now()
        ORDER BY 4, 1
    LOOP
        PERFORM credit._event(v_after.wholesaler_id, v_after.retailer_id, e.kind, e.ref, e.amount,
            credit._available(v_after),
            CASE WHEN e.previous IS NULL THEN jsonb_build_object('effective_at', e.moment)
                 ELSE jsonb_build_object('effective_at', e.moment, 'previous_limit', e.previous) END);
    END LOOP;
    IF v_after.overdue_grace_days IS NOT NULL AND v_after.overdue_since IS NULL THEN
        PERFORM credit._overdue_event(v_after.id, true);
    END IF;
    RETURN v_count;
END
$$;
REVOKE ALL ON FUNCTION credit._sweep_line(bigint, integer) FROM PUBLIC;
