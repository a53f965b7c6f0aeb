SET ROLE credit_owner;

-- True exactly when credit._id_problem finds nothing: a cheaper test for the
-- common case, where every value is fine. A regex is one call where
-- _id_problem's checks are several, and each call in an expression is
-- compiled (and its EXECUTE privilege checked) once per transaction.
-- Inlined into the caller like _id_problem.
CREATE OR REPLACE FUNCTION credit._id_ok(value text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT length(value) <= 200 AND value ~ '^[^[:cntrl:]]*[^[:cntrl:] ][^[:cntrl:]]*$'
$$;
REVOKE ALL ON FUNCTION credit._id_ok(text) FROM PUBLIC;
