SET ROLE credit_owner;

-- What is wrong with an amount, or NULL. Parameter types cannot do this:
-- numeric(14,2) silently rounds 10.005 and CHECK (x > 0) accepts NaN.
-- sign is 'positive', 'non_negative' (limits) or 'non_zero' (adjustments).
-- Inlined into the caller like _id_problem.
CREATE OR REPLACE FUNCTION credit._money_problem(value numeric, name text, sign text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN value IS NULL THEN format('%s must not be NULL', name)
        WHEN value = 'NaN' THEN format('%s must be a number, not NaN', name)
        WHEN value IN ('Infinity', '-Infinity') THEN format('%s must be finite', name)
        WHEN sign = 'positive' AND value <= 0 THEN format('%s must be greater than zero, got %s', name, value)
        WHEN sign = 'non_negative' AND value < 0 THEN format('%s must not be negative, got %s', name, value)
        WHEN sign = 'non_zero' AND value = 0 THEN format('%s must not be zero', name)
        WHEN abs(value) > 1e15 THEN format('%s must be at most 10^15 in size, got %s', name, value)
        WHEN value <> round(value, 2) THEN format('%s must have at most 2 decimal places, got %s', name, value)
    END
$$;
REVOKE ALL ON FUNCTION credit._money_problem(numeric, text, text) FROM PUBLIC;
