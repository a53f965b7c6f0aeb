SET ROLE credit_owner;

-- Locks the line row (the only lock a single-line operation takes, so these
-- cannot deadlock) and sweeps its expired holds. Returns a row of NULLs when
-- there is no such line. The wait is bounded by the calling function's
-- SET lock_timeout clause, or by credit.lock_timeout (_apply_lock_timeout).
CREATE OR REPLACE FUNCTION credit._lock_line(wholesaler_id text, retailer_id text) RETURNS credit.line
LANGUAGE plpgsql AS $$
DECLARE
    l credit.line;
BEGIN
    IF current_setting('credit.lock_timeout', true) <> '' THEN
        PERFORM credit._apply_lock_timeout();
    END IF;
    SELECT * INTO l FROM credit.line x
     WHERE x.wholesaler_id = _lock_line.wholesaler_id AND x.retailer_id = _lock_line.retailer_id
       FOR NO KEY UPDATE;

    IF l.next_expiry <= now() THEN
        PERFORM credit._sweep_line(l.id, NULL);
        SELECT * INTO l FROM credit.line x WHERE x.id = l.id;
    END IF;
    RETURN l;
END
$$;
REVOKE ALL ON FUNCTION credit._lock_line(text, text) FROM PUBLIC;
