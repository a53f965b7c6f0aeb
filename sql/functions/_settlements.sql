SET ROLE credit_owner;

-- The settlements a call has just made on a line, for its event's data: the
-- rows of credit.settlement after after_id (the largest id before the call,
-- taken under the line's lock: no other transaction settles this line's
-- items meanwhile), oldest first; NULL when there are none. A range of the
-- settlement's primary key, so it costs what it returns.
CREATE OR REPLACE FUNCTION credit._settlements(line_id bigint, after_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT jsonb_agg(jsonb_build_object('ledger_entry_id', s.item_id, 'entry_type', e.entry_type,
                                                'ref', e.ref, 'amount', round(s.amount, 2)::text) ORDER BY s.id)
              FROM credit.settlement s JOIN credit.ledger_entry e ON e.id = s.item_id
             WHERE s.id > after_id AND s.line_id = _settlements.line_id);
END
$$;
REVOKE ALL ON FUNCTION credit._settlements(bigint, bigint) FROM PUBLIC;
