SET ROLE credit_owner;

-- Locks the line row (the only lock a single-line operation takes, so these
-- cannot deadlock) and sweeps its expired holds. Returns a row of NULLs when
-- there is no such line.
--
-- The wait is bounded by credit.lock_timeout (default 2s; a DBA changes it with
-- ALTER DATABASE/ROLE ... SET credit.lock_timeout) or by the session's own
-- lock_timeout when that is shorter. Past it Postgres raises 55P03, which the
-- caller may retry with the same idempotency key.
CREATE OR REPLACE FUNCTION credit._lock_line(wholesaler_id text, retailer_id text) RETURNS credit.line
LANGUAGE plpgsql AS $$
DECLARE
    l credit.line;
    v_bound text := coalesce(
        nullif(current_setting('credit.lock_timeout', true), ''), '2s');
    v_saved text := current_setting('lock_timeout');
    v_swap boolean := v_saved = '0' OR v_saved::interval > v_bound::interval;
BEGIN
    IF v_swap THEN
        PERFORM set_config('lock_timeout', v_bound, true);
    END IF;
    SELECT * INTO l FROM credit.line x
     WHERE x.wholesaler_id = _lock_line.wholesaler_id AND x.retailer_id = _lock_line.retailer_id
       FOR NO KEY UPDATE;
    IF v_swap THEN
        PERFORM set_config('lock_timeout', v_saved, true);
    END IF;

    IF l.next_expiry <= now() THEN
        PERFORM credit._sweep_line(l.id, NULL);
        SELECT * INTO l FROM credit.line x WHERE x.id = l.id;
    END IF;
    RETURN l;
END
$$;
REVOKE ALL ON FUNCTION credit._lock_line(text, text) FROM PUBLIC;
