SET ROLE credit_owner;

-- Puts back the session's lock_timeout saved by credit._bound_lock_wait(), if
-- any; returns the setting now in force. An SQL expression: inlined too.
CREATE OR REPLACE FUNCTION credit._end_lock_wait(saved text) RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN saved IS NOT NULL THEN set_config('lock_timeout', saved, true) END
$$;
REVOKE ALL ON FUNCTION credit._end_lock_wait(text) FROM PUBLIC;
