SET ROLE credit_owner;

-- The id of the line of (wholesaler_id, retailer_id) for the set-returning
-- reads, after checking both ids; no such line raises P0002 with a message
-- that starts with line_not_found (SPEC), since a set has no code column.
CREATE OR REPLACE FUNCTION credit._line_id(wholesaler_id text, retailer_id text) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_line bigint;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    SELECT l.id INTO v_line FROM credit.line l
     WHERE l.wholesaler_id = _line_id.wholesaler_id AND l.retailer_id = _line_id.retailer_id;
    IF v_line IS NULL THEN
        RAISE USING ERRCODE = 'P0002',
            MESSAGE = format('line_not_found: no line for wholesaler_id %L, retailer_id %L', wholesaler_id, retailer_id);
    END IF;
    RETURN v_line;
END
$$;
REVOKE ALL ON FUNCTION credit._line_id(text, text) FROM PUBLIC;
