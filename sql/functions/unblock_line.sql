SET ROLE credit_owner;

CREATE OR REPLACE FUNCTION credit.unblock_line(wholesaler_id text, retailer_id text, reason text)
RETURNS credit.status_result
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
    SELECT * FROM credit._set_status(wholesaler_id, retailer_id, 'active', reason)
$$;
REVOKE ALL ON FUNCTION credit.unblock_line(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.unblock_line(text, text, text) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.unblock_line(text, text, text) IS $doc$Unblocks a line: it grants reservations again. The change and its reason are kept in the line's history;
unblocking an active line changes nothing.
Arguments:
  wholesaler_id, retailer_id: the line.
  reason: why, kept in the line's history.
Codes: ok, line_not_found
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same arguments.$doc$;
