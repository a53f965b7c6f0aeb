SET ROLE credit_owner;

-- Validates an amount and returns it with scale 2. Parameter types cannot do
-- this: numeric(14,2) silently rounds 10.005 and CHECK (x > 0) accepts NaN.
-- sign is 'positive', 'non_negative' (limits) or 'non_zero' (adjustments).
CREATE OR REPLACE FUNCTION credit._money(value numeric, name text, sign text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF value IS NULL THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('%s must not be NULL', name);
    ELSIF value = 'NaN' THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('%s must be a number, not NaN', name);
    ELSIF value IN ('Infinity', '-Infinity') THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('%s must be finite', name);
    ELSIF sign = 'positive' AND value <= 0 THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('%s must be greater than zero, got %s', name, value);
    ELSIF sign = 'non_negative' AND value < 0 THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('%s must not be negative, got %s', name, value);
    ELSIF sign = 'non_zero' AND value = 0 THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('%s must not be zero', name);
    ELSIF abs(value) > 1e15 THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('%s must be at most 10^15 in size, got %s', name, value);
    ELSIF value <> round(value, 2) THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('%s must have at most 2 decimal places, got %s', name, value);
    END IF;
    RETURN round(value, 2);
END
$$;
REVOKE ALL ON FUNCTION credit._money(numeric, text, text) FROM PUBLIC;
