SET ROLE credit_owner;

-- Raises 22023 naming the element when a list of refs is not a list of
-- distinct good refs (each as credit._id_problem wants it) of at most 1,000
-- (applies_to[3], counting from 1 whatever the array's lower bound).
CREATE OR REPLACE FUNCTION credit._require_refs(refs text[], name text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_problem text;
BEGIN
    IF array_ndims(refs) > 1 THEN
        v_problem := format('%s must be a one-dimensional array', name);
    ELSIF cardinality(refs) > 1000 THEN
        v_problem := format('%s must hold at most 1000 refs, got %s', name, cardinality(refs));
    ELSE
        SELECT coalesce(credit._id_problem(t.ref, format('%s[%s]', name, t.i)),
                        CASE WHEN t.first < t.i
                             THEN format('%s[%s] repeats %s[%s] (%s)', name, t.i, name, t.first, t.ref) END)
          INTO v_problem
          FROM (SELECT u.ref, u.i, min(u.i) OVER (PARTITION BY u.ref) AS first
                  FROM unnest(refs) WITH ORDINALITY AS u(ref, i)) t
         WHERE credit._id_problem(t.ref, '') IS NOT NULL OR t.first < t.i
         ORDER BY t.i
         LIMIT 1;
    END IF;
    IF v_problem IS NOT NULL THEN
        RAISE USING ERRCODE = '22023', MESSAGE = v_problem;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION credit._require_refs(text[], text) FROM PUBLIC;
