SET ROLE credit_owner;

-- The rule for amounts: a number with at most 2 decimal places, at most
-- 10^15 in size, and of the given sign: 'positive', 'non_negative' (limits)
-- or 'non_zero' (adjustments). NULL for NULL. The fast paths and the bulk
-- calls' one pass over all items test it; credit._money_problem decides with
-- it and only then says why. Plain SQL, inlined into the caller, where a
-- constant sign leaves only its own test: as cheap as comparisons written in
-- place (NaN and the infinities fail the size test).
CREATE OR REPLACE FUNCTION credit._money_ok(value numeric, sign text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE sign WHEN 'positive' THEN value > 0 WHEN 'non_negative' THEN value >= 0 ELSE value <> 0 END
       AND value BETWEEN -1e15 AND 1e15 AND value = round(value, 2)
$$;
REVOKE ALL ON FUNCTION credit._money_ok(numeric, text) FROM PUBLIC;
