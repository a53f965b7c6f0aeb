SET ROLE credit_owner;

-- convert_to_debit_batch's whole input check, on its own (see
-- _reserve_credit_batch_check). shipment_refs may be NULL, or hold NULLs
-- (final conversions); any other element is a ref that differs from its
-- item's order_ref, as convert_to_debit's shipment_ref.
DROP FUNCTION IF EXISTS credit._convert_to_debit_batch_check(text[], text[], text[], numeric[]);
CREATE OR REPLACE FUNCTION credit._convert_to_debit_batch_check(
    wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[] DEFAULT NULL,
    shipment_refs text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_n integer := credit._check_batch(wholesaler_ids, retailer_ids, order_refs, 'order_refs', amounts, true);
    v_problem text;
BEGIN
    IF shipment_refs IS NULL THEN
        RETURN;
    ELSIF array_ndims(shipment_refs) > 1 THEN
        v_problem := 'shipment_refs must be a one-dimensional array';
    ELSIF cardinality(shipment_refs) <> v_n THEN
        v_problem := format('shipment_refs must hold as many items as wholesaler_ids (%s), got %s',
                            v_n, cardinality(shipment_refs));
    ELSE
        SELECT coalesce(credit._id_problem(t.s, format('shipment_refs[%s]', t.i)),
                        format('shipment_refs[%s] must differ from order_refs[%s]: the final conversion''s DEBIT '
                               'carries the order_ref', t.i, t.i))
          INTO v_problem
          FROM unnest(shipment_refs, order_refs) WITH ORDINALITY AS t(s, o, i)
         WHERE t.s IS NOT NULL AND (NOT coalesce(credit._id_ok(t.s), false) OR t.s = t.o)
         ORDER BY t.i
         LIMIT 1;
    END IF;
    IF v_problem IS NOT NULL THEN
        RAISE USING ERRCODE = '22023', MESSAGE = v_problem;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION credit._convert_to_debit_batch_check(text[], text[], text[], numeric[], text[]) FROM PUBLIC;
