SET ROLE credit_owner;

-- The limit in force: a temporary limit until its valid_until, the permanent
-- one from that moment on, with no job to run. Plain SQL, inlined by the planner.
CREATE OR REPLACE FUNCTION credit._active_limit(credit_limit numeric, temp_limit numeric, valid_until timestamptz)
RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN valid_until > now() THEN temp_limit ELSE credit_limit END
$$;
REVOKE ALL ON FUNCTION credit._active_limit(numeric, numeric, timestamptz) FROM PUBLIC;
-- The views inline it, and a view checks function privileges against its reader.
GRANT EXECUTE ON FUNCTION credit._active_limit(numeric, numeric, timestamptz) TO credit_auditor, credit_monitor;
