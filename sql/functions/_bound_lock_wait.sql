SET ROLE credit_owner;

-- Bounds the lock waits of the statements that follow, until the caller passes
-- the returned setting to credit._end_lock_wait (NULL: nothing to put back).
-- The bound is credit.lock_timeout (default 2s; a DBA changes it with ALTER
-- DATABASE/ROLE ... SET credit.lock_timeout), or the session's own lock_timeout
-- when that is shorter. Past it Postgres raises 55P03, retryable with the same key.
--
-- One SQL expression, so that the planner inlines it into the caller (every
-- call pays for it, BENCHMARKS.md). `saved || left(set_config(...), 0)` reads
-- the session's setting before replacing it: PostgreSQL evaluates a
-- function's arguments in order.
CREATE OR REPLACE FUNCTION credit._bound_lock_wait() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT CASE
        WHEN current_setting('lock_timeout') = '0'
          OR current_setting('lock_timeout')::interval
             > coalesce(nullif(current_setting('credit.lock_timeout', true), ''), '2s')::interval
        THEN current_setting('lock_timeout')
             || left(set_config('lock_timeout',
                                coalesce(nullif(current_setting('credit.lock_timeout', true), ''), '2s'), true), 0)
    END
$$;
REVOKE ALL ON FUNCTION credit._bound_lock_wait() FROM PUBLIC;
