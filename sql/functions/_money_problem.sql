SET ROLE credit_owner;

-- What is wrong with an amount, or NULL: credit._money_ok decides, and only
-- when it refuses does this pick the message. Parameter types cannot do
-- this: numeric(14,2) silently rounds 10.005 and CHECK (x > 0) accepts NaN.
-- Inlined into the caller like _id_problem.
CREATE OR REPLACE FUNCTION credit._money_problem(value numeric, name text, sign text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN credit._money_ok(value, sign) THEN NULL ELSE format(CASE
        WHEN value IS NULL THEN '%s must not be NULL'
        WHEN value = 'NaN' THEN '%s must be a number, not NaN'
        WHEN value IN ('Infinity', '-Infinity') THEN '%s must be finite'
        WHEN sign = 'positive' AND value <= 0 THEN '%s must be greater than zero, got %s'
        WHEN sign = 'non_negative' AND value < 0 THEN '%s must not be negative, got %s'
        WHEN sign = 'non_zero' AND value = 0 THEN '%s must not be zero'
        WHEN abs(value) > 1e15 THEN '%s must be at most 10^15 in size, got %s'
        ELSE '%s must have at most 2 decimal places, got %s'
    END, name, value) END
$$;
REVOKE ALL ON FUNCTION credit._money_problem(numeric, text, text) FROM PUBLIC;
