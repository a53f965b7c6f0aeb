SET ROLE credit_owner;

-- What is wrong with an id or idempotency key, or NULL: non-NULL, not blank, at
-- most 200 characters, no control characters. A plain SQL expression, so the
-- planner inlines it into the caller (no function call per check).
CREATE OR REPLACE FUNCTION credit._id_problem(value text, name text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN value IS NULL THEN format('%s must not be NULL', name)
        WHEN btrim(value) = '' THEN format('%s must not be blank', name)
        WHEN length(value) > 200 THEN format('%s must be at most 200 characters, got %s', name, length(value))
        WHEN value ~ '[[:cntrl:]]' THEN format('%s must not contain control characters', name)
    END
$$;
REVOKE ALL ON FUNCTION credit._id_problem(text, text) FROM PUBLIC;
