SET ROLE credit_owner;

-- overdue_began / overdue_ended (SPEC "Events"): compares whether the line's
-- overdue policy refuses new reservations now (credit._overdue, the rule
-- reserve_credit applies) with what the line's last such event said
-- (line.overdue_since), and on a change records it and writes the event.
-- The caller holds the line's lock and has made its change.
--
-- by_time: the sweep's call, for a line that began refusing by the passing
-- of days alone; the event then says from when: the start of the first day
-- on which its unpaid items past their grace period exceeded the tolerated
-- amount (every change since was checked, so it began after the last one).
-- Otherwise the change that is being made began or ended it, now.
--
-- current_date is the session's, as for the refusal itself: sessions in time
-- zones a day apart can disagree around midnight (OPERATIONS.md, "Events").
CREATE OR REPLACE FUNCTION credit._overdue_event(line_id bigint, by_time boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    l credit.line;
    v_overdue boolean;
    v_amount numeric;
    v_since timestamptz;
BEGIN
    SELECT * INTO l FROM credit.line x WHERE x.id = _overdue_event.line_id;
    IF l.overdue_grace_days IS NULL AND l.overdue_since IS NULL THEN
        RETURN;
    END IF;
    v_overdue := coalesce(credit._overdue(l), false);
    IF v_overdue = (l.overdue_since IS NOT NULL) THEN
        RETURN;
    END IF;
    SELECT coalesce(sum(o.unpaid), 0.00) INTO v_amount FROM credit.open_item o
     WHERE o.line_id = l.id AND o.due_date < current_date - l.overdue_grace_days;

    IF v_overdue THEN
        v_since := now();
        IF by_time THEN
            SELECT least(now(), (c.due_date + l.overdue_grace_days + 1)::timestamptz) INTO v_since
              FROM (SELECT o.due_date, sum(o.unpaid) OVER (ORDER BY o.due_date, o.entry_id) AS upto
                      FROM credit.open_item o
                     WHERE o.line_id = l.id AND o.due_date < current_date - l.overdue_grace_days) c
             WHERE c.upto > l.max_overdue_amount
             ORDER BY c.due_date LIMIT 1;
        END IF;
        UPDATE credit.line x SET overdue_since = v_since WHERE x.id = l.id;
        PERFORM credit._event(l.wholesaler_id, l.retailer_id, 'overdue_began', NULL, v_amount, credit._available(l), jsonb_build_object(
            'effective_at', v_since, 'grace_days', l.overdue_grace_days,
            'max_overdue_amount', round(l.max_overdue_amount, 2)::text));
    ELSE
        UPDATE credit.line x SET overdue_since = NULL WHERE x.id = l.id;
        PERFORM credit._event(l.wholesaler_id, l.retailer_id, 'overdue_ended', NULL, v_amount, credit._available(l), jsonb_build_object(
            'effective_at', now(), 'since', l.overdue_since, 'grace_days', l.overdue_grace_days,
            'max_overdue_amount', round(l.max_overdue_amount, 2)::text));
    END IF;
END
$$;
REVOKE ALL ON FUNCTION credit._overdue_event(bigint, boolean) FROM PUBLIC;
