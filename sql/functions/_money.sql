SET ROLE credit_owner;

-- Raises 22023 naming the argument when credit._money_problem finds one;
-- otherwise returns the amount with scale 2.
CREATE OR REPLACE FUNCTION credit._money(value numeric, name text, sign text) RETURNS numeric
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_problem text := credit._money_problem(value, name, sign);
BEGIN
    IF v_problem IS NOT NULL THEN
        RAISE USING ERRCODE = '22023', MESSAGE = v_problem;
    END IF;
    RETURN round(value, 2);
END
$$;
REVOKE ALL ON FUNCTION credit._money(numeric, text, text) FROM PUBLIC;
