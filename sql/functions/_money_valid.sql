SET ROLE credit_owner;

-- True exactly when credit._money_problem finds nothing: the test of the
-- calls' fast paths and of the bulk calls' one pass over all items, where
-- every value is usually fine; the message is built only when it fails.
-- Defined by _money_problem, so the rule for amounts is written once. Both
-- are plain SQL, inlined into the caller, where a constant sign leaves only
-- its own test.
CREATE OR REPLACE FUNCTION credit._money_valid(value numeric, sign text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT credit._money_problem(value, '', sign) IS NULL
$$;
REVOKE ALL ON FUNCTION credit._money_valid(numeric, text) FROM PUBLIC;
