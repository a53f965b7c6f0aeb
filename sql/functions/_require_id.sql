SET ROLE credit_owner;

-- Ids and idempotency keys: non-NULL, not blank, at most 200 characters, no
-- control characters. The message names the argument so any caller can tell
-- which value was refused.
CREATE OR REPLACE FUNCTION credit._require_id(value text, name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF value IS NULL THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('%s must not be NULL', name);
    ELSIF btrim(value) = '' THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('%s must not be blank', name);
    ELSIF length(value) > 200 THEN
        RAISE USING ERRCODE = '22023',
            MESSAGE = format('%s must be at most 200 characters, got %s', name, length(value));
    ELSIF value ~ '[[:cntrl:]]' THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('%s must not contain control characters', name);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION credit._require_id(text, text) FROM PUBLIC;
