SET ROLE credit_owner;

-- The line of each item of a bulk call (NULL where there is none), in item
-- order. One probe of the line's key per distinct (wholesaler_id,
-- retailer_id) (OFFSET 0 keeps each probe a lookup of its own): the cost
-- follows the batch, never the number of lines, whatever the planner's
-- statistics say. PL/pgSQL, so that the statement's plan is kept (an SQL
-- function called this way is planned on every call). Takes no lock.
CREATE OR REPLACE FUNCTION credit._line_ids(wholesaler_ids text[], retailer_ids text[]) RETURNS bigint[]
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        WITH u AS MATERIALIZED (
            SELECT t.w, t.r, t.i FROM unnest(wholesaler_ids, retailer_ids) WITH ORDINALITY AS t(w, r, i)),
        found AS MATERIALIZED (
            SELECT d.w, d.r, x.id
              FROM (SELECT DISTINCT u.w, u.r FROM u) d
              LEFT JOIN LATERAL (SELECT l.id FROM credit.line l
                                  WHERE l.wholesaler_id = d.w AND l.retailer_id = d.r OFFSET 0) x ON true)
        SELECT array_agg(f.id ORDER BY u.i) FROM u JOIN found f ON f.w = u.w AND f.r = u.r);
END
$$;
REVOKE ALL ON FUNCTION credit._line_ids(text[], text[]) FROM PUBLIC;
