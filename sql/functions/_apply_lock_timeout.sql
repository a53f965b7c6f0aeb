SET ROLE credit_owner;

-- Every function that may wait for a lock bounds the wait with its own
-- SET lock_timeout = '2s' clause, whatever the session's lock_timeout. A DBA
-- changes the bound without editing the functions:
--     ALTER DATABASE shop SET credit.lock_timeout = '5s';
-- and this, run before the first wait, puts that setting in force until the
-- calling function returns (PostgreSQL restores a setting named in a
-- function's SET clause when the function exits). Past the bound PostgreSQL
-- raises 55P03, retryable with the same key. Callers test for the setting
-- first, which costs less than this call on every request:
--     IF current_setting('credit.lock_timeout', true) <> '' THEN
--         PERFORM credit._apply_lock_timeout();
--     END IF;
CREATE OR REPLACE FUNCTION credit._apply_lock_timeout() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN current_setting('credit.lock_timeout', true) <> ''
                THEN set_config('lock_timeout', current_setting('credit.lock_timeout'), true) END
$$;
REVOKE ALL ON FUNCTION credit._apply_lock_timeout() FROM PUBLIC;
