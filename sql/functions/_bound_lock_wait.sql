SET ROLE credit_owner;

-- Bounds the lock waits of the statements that follow, until the caller puts
-- back the returned setting (NULL: nothing to put back). The bound is
-- credit.lock_timeout (default 2s; a DBA changes it with ALTER DATABASE/ROLE
-- ... SET credit.lock_timeout), or the session's own lock_timeout when that is
-- shorter. Past it Postgres raises 55P03, retryable with the same key.
CREATE OR REPLACE FUNCTION credit._bound_lock_wait() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_bound text := coalesce(nullif(current_setting('credit.lock_timeout', true), ''), '2s');
    v_saved text := current_setting('lock_timeout');
BEGIN
    IF v_saved = '0' OR v_saved::interval > v_bound::interval THEN
        PERFORM set_config('lock_timeout', v_bound, true);
        RETURN v_saved;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION credit._bound_lock_wait() FROM PUBLIC;
