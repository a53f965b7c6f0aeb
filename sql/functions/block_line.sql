SET ROLE credit_owner;

-- A blocked line refuses new reservations; everything else still works.
CREATE OR REPLACE FUNCTION credit.block_line(wholesaler_id text, retailer_id text, reason text)
RETURNS credit.status_result
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
    SELECT * FROM credit._set_status(wholesaler_id, retailer_id, 'blocked', reason)
$$;
REVOKE ALL ON FUNCTION credit.block_line(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.block_line(text, text, text) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.block_line(text, text, text) IS $doc$Blocks a line: it refuses new reservations (line_blocked, can_reserve says so too); releases, conversions,
payments, reversals and adjustments still work, and so do replays of earlier reservations. The change and
its reason are kept in the line's history; blocking a blocked line changes nothing.
Arguments:
  wholesaler_id, retailer_id: the line.
  reason: why, kept in the line's history.
Codes: ok, line_not_found
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same arguments.$doc$;
COMMENT ON TYPE credit.status_result IS $doc$The outcome of block_line and unblock_line.$doc$;
COMMENT ON COLUMN credit.status_result.code IS $doc$ok or line_not_found.$doc$;
COMMENT ON COLUMN credit.status_result.status IS $doc$The line's status after the call: blocked or active.$doc$;
