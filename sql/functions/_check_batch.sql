SET ROLE credit_owner;

-- The input check of the bulk calls (SPEC "Bulk calls"): the item arrays are
-- one-dimensional, of one length, 1..10,000 items, and every element is what
-- the single-item function accepts. Anything else raises 22023 naming the
-- argument or the element (`amounts[7]`: the 7th item, counting from 1
-- whatever the array's lower bound), before the caller writes anything.
-- Returns the number of items.
--
-- One statement tests every element with the tests of the single
-- functions' fast paths (credit._id_ok, credit._money_ok); the checks that
-- build a message run only when it fails. amounts NULL (the array or an
-- element) passes when whole_allowed: convert_to_debit's "the whole hold".
CREATE OR REPLACE FUNCTION credit._check_batch(
    wholesaler_ids text[], retailer_ids text[], refs text[], refs_name text, amounts numeric[],
    whole_allowed boolean)
RETURNS integer
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_n integer := cardinality(wholesaler_ids);
    v_problem text;
    v_ok boolean;
BEGIN
    v_problem := CASE
        WHEN wholesaler_ids IS NULL THEN 'wholesaler_ids must not be NULL'
        WHEN array_ndims(wholesaler_ids) > 1 THEN 'wholesaler_ids must be a one-dimensional array'
        WHEN v_n = 0 THEN 'wholesaler_ids must hold at least one item'
        WHEN v_n > 10000 THEN format('wholesaler_ids must hold at most 10000 items, got %s', v_n)
        WHEN retailer_ids IS NULL THEN 'retailer_ids must not be NULL'
        WHEN array_ndims(retailer_ids) > 1 THEN 'retailer_ids must be a one-dimensional array'
        WHEN cardinality(retailer_ids) <> v_n THEN
            format('retailer_ids must hold as many items as wholesaler_ids (%s), got %s', v_n, cardinality(retailer_ids))
        WHEN refs IS NULL THEN format('%s must not be NULL', refs_name)
        WHEN array_ndims(refs) > 1 THEN format('%s must be a one-dimensional array', refs_name)
        WHEN cardinality(refs) <> v_n THEN
            format('%s must hold as many items as wholesaler_ids (%s), got %s', refs_name, v_n, cardinality(refs))
        WHEN amounts IS NULL AND NOT whole_allowed THEN 'amounts must not be NULL'
        WHEN array_ndims(amounts) > 1 THEN 'amounts must be a one-dimensional array'
        WHEN cardinality(amounts) <> v_n THEN
            format('amounts must hold as many items as wholesaler_ids (%s), got %s', v_n, cardinality(amounts))
    END;
    IF v_problem IS NOT NULL THEN
        RAISE USING ERRCODE = '22023', MESSAGE = v_problem;
    END IF;

    -- Line ids repeat in a batch (many orders of one retailer): each distinct
    -- one is tested once. coalesce: bool_and skips NULLs, and _id_ok(NULL) is NULL.
    SELECT bool_and(coalesce(credit._id_ok(t.o)
                             AND (t.a IS NULL AND whole_allowed OR credit._money_ok(t.a, 'positive')),
                             false))
           AND (SELECT bool_and(coalesce(credit._id_ok(d.v), false))
                  FROM (SELECT DISTINCT v FROM unnest(wholesaler_ids || retailer_ids) AS v) d)
      INTO v_ok
      FROM unnest(refs, amounts) AS t(o, a);
    IF v_ok THEN
        RETURN v_n;
    END IF;

    SELECT p.problem INTO v_problem
      FROM unnest(wholesaler_ids, retailer_ids, refs, amounts) WITH ORDINALITY AS t(w, r, o, a, i)
     CROSS JOIN LATERAL (SELECT coalesce(
            credit._id_problem(t.w, format('wholesaler_ids[%s]', t.i)),
            credit._id_problem(t.r, format('retailer_ids[%s]', t.i)),
            credit._id_problem(t.o, format('%s[%s]', refs_name, t.i)),
            CASE WHEN t.a IS NOT NULL OR NOT whole_allowed
                 THEN credit._money_problem(t.a, format('amounts[%s]', t.i), 'positive') END) AS problem) p
     WHERE p.problem IS NOT NULL
     ORDER BY t.i
     LIMIT 1;
    RAISE USING ERRCODE = '22023', MESSAGE = v_problem;
END
$$;
REVOKE ALL ON FUNCTION credit._check_batch(text[], text[], text[], text, numeric[], boolean) FROM PUBLIC;
