SET ROLE credit_owner;

-- block_line and unblock_line: a change of status is kept in line_event; setting
-- the status the line already has changes nothing and records nothing.
CREATE OR REPLACE FUNCTION credit._set_status(wholesaler_id text, retailer_id text, status text, reason text)
RETURNS credit.status_result
LANGUAGE plpgsql AS $$
DECLARE
    l credit.line;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    PERFORM credit._require_text(reason, 'reason');

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN ('line_not_found', NULL)::credit.status_result;
    ELSIF l.status <> _set_status.status THEN
        UPDATE credit.line x SET status = _set_status.status WHERE x.id = l.id;
        INSERT INTO credit.line_event (line_id, kind, reason)
        VALUES (l.id, CASE _set_status.status WHEN 'blocked' THEN 'blocked' ELSE 'unblocked' END, reason);
        PERFORM credit._event(l.wholesaler_id, l.retailer_id, CASE _set_status.status WHEN 'blocked' THEN 'line_blocked' ELSE 'line_unblocked' END,
                              NULL, NULL, credit._available(l), jsonb_build_object('reason', reason));
    END IF;
    RETURN ('ok', _set_status.status)::credit.status_result;
END
$$;
REVOKE ALL ON FUNCTION credit._set_status(text, text, text, text) FROM PUBLIC;
