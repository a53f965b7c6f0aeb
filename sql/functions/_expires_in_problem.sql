SET ROLE credit_owner;

-- What is wrong with a hold's expires_in, or NULL: a positive finite
-- interval, or NULL for a hold that does not expire. reserve_credit's fast
-- path tests it IS NULL, its careful path and reserve_credit_batch's check
-- raise the message. Plain SQL: inlined into the caller.
CREATE OR REPLACE FUNCTION credit._expires_in_problem(value interval) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT isfinite(value) OR value <= interval '0'
                THEN format('expires_in must be a positive finite interval, got %s', value) END
$$;
REVOKE ALL ON FUNCTION credit._expires_in_problem(interval) FROM PUBLIC;
