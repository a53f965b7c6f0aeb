SET ROLE credit_owner;

-- Locks the line row (the only lock a single-line operation takes, so these
-- cannot deadlock), waiting no longer than credit._bound_lock_wait() allows,
-- and sweeps its expired holds. Returns a row of NULLs when there is no such line.
CREATE OR REPLACE FUNCTION credit._lock_line(wholesaler_id text, retailer_id text) RETURNS credit.line
LANGUAGE plpgsql AS $$
DECLARE
    l credit.line;
    v_saved text := credit._bound_lock_wait();
BEGIN
    SELECT * INTO l FROM credit.line x
     WHERE x.wholesaler_id = _lock_line.wholesaler_id AND x.retailer_id = _lock_line.retailer_id
       FOR NO KEY UPDATE;
    v_saved := credit._end_lock_wait(v_saved);

    IF l.next_expiry <= now() THEN
        PERFORM credit._sweep_line(l.id, NULL);
        SELECT * INTO l FROM credit.line x WHERE x.id = l.id;
    END IF;
    RETURN l;
END
$$;
REVOKE ALL ON FUNCTION credit._lock_line(text, text) FROM PUBLIC;
