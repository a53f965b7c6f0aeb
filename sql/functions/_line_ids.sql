SET ROLE credit_owner;

-- The line of each item of a bulk call (NULL where there is none), in item
-- order. One probe of the line's key per item (OFFSET 0 keeps each probe a
-- lookup of its own): the cost follows the batch, never the number of lines,
-- whatever the planner's statistics say. Takes no lock.
CREATE OR REPLACE FUNCTION credit._line_ids(wholesaler_ids text[], retailer_ids text[]) RETURNS bigint[]
LANGUAGE sql STABLE AS $$
    SELECT array_agg(x.id ORDER BY u.i)
      FROM unnest(wholesaler_ids, retailer_ids) WITH ORDINALITY AS u(w, r, i)
      LEFT JOIN LATERAL (SELECT l.id FROM credit.line l
                          WHERE l.wholesaler_id = u.w AND l.retailer_id = u.r OFFSET 0) x ON true
$$;
REVOKE ALL ON FUNCTION credit._line_ids(text[], text[]) FROM PUBLIC;
