SET ROLE credit_owner;

-- Free text kept in history (reasons): present, not blank, bounded.
CREATE OR REPLACE FUNCTION credit._require_text(value text, name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF value IS NULL OR btrim(value) = '' THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('%s must not be NULL or blank', name);
    ELSIF length(value) > 1000 THEN
        RAISE USING ERRCODE = '22023',
            MESSAGE = format('%s must be at most 1000 characters, got %s', name, length(value));
    END IF;
END
$$;
REVOKE ALL ON FUNCTION credit._require_text(text, text) FROM PUBLIC;
