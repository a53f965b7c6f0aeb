SET ROLE credit_owner;

-- Raises 22023 naming the argument when credit._id_problem finds one.
CREATE OR REPLACE FUNCTION credit._require_id(value text, name text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_problem text := credit._id_problem(value, name);
BEGIN
    IF v_problem IS NOT NULL THEN
        RAISE USING ERRCODE = '22023', MESSAGE = v_problem;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION credit._require_id(text, text) FROM PUBLIC;
