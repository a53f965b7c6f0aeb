SET ROLE credit_owner;

-- A page of a line's holds in one status (NULL: every status), ascending
-- reservation_id after after_reservation_id (keyset paging). status is the
-- effective one: an active hold past expires_at is listed as expired.
-- remaining_amount: what the hold still counts toward reserved (amount less
-- what was shipped; 0 once it has ended or expired).
--
-- Each stored status is one range of reservation_list_idx (line_id, status,
-- id); the branches below read at most max_rows rows each and are merged in
-- id order, so a page costs what it returns, however many ended holds the
-- line has. Branches for other statuses are cut off before they run.
-- v1.2 replaced the row type (migration 0007). The function of the release
-- before goes, in this reload's one transaction; its type stays (a later
-- release drops it): a call still running the old function when the reload
-- commits returns the old type, and would fail if it were gone.
DO $$
BEGIN
    IF (SELECT prorettype FROM pg_proc WHERE oid = to_regprocedure('credit.list_reservations(text, text, text, bigint, integer)'))
       = to_regtype('credit.reservation_row') THEN
        DROP FUNCTION credit.list_reservations(text, text, text, bigint, integer);
    END IF;
END
$$;
CREATE OR REPLACE FUNCTION credit.list_reservations(
    wholesaler_id text, retailer_id text, status text DEFAULT 'active',
    after_reservation_id bigint DEFAULT NULL, max_rows integer DEFAULT 100)
RETURNS SETOF credit.reservation_listing
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_line bigint;
    v_status text := list_reservations.status;
    v_after bigint := coalesce(after_reservation_id, 0);
BEGIN
    IF v_status NOT IN ('active', 'released', 'converted', 'expired') THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format(
            'status must be active, released, converted, expired or NULL (every status), got %L', v_status);
    ELSIF max_rows IS NULL OR max_rows NOT BETWEEN 1 AND 1000 THEN
        RAISE USING ERRCODE = '22023',
            MESSAGE = format('max_rows must be between 1 and 1000, got %s', coalesce(max_rows::text, 'NULL'));
    END IF;
    v_line := credit._line_id(wholesaler_id, retailer_id);

    RETURN QUERY
    SELECT p.id, p.order_ref, p.status, (p.amount)::numeric(1000, 2), p.expires_at, p.created_at,
           (p.remaining)::numeric(1000, 2)
      FROM ((SELECT h.id, h.order_ref, CASE WHEN h.expires_at <= now() THEN 'expired' ELSE 'active' END AS status,
                    h.amount, h.expires_at, h.created_at,
                    CASE WHEN h.expires_at <= now() THEN 0 ELSE h.amount - coalesce(h.converted_amount, 0) END
                        AS remaining
               FROM credit.reservation h
              WHERE h.line_id = v_line AND h.status = 'active' AND h.id > v_after
                AND (v_status IS NULL
                     OR v_status = 'active' AND h.expires_at IS NULL OR v_status = 'active' AND h.expires_at > now()
                     OR v_status = 'expired' AND h.expires_at <= now())
                AND (v_status IS NULL OR v_status IN ('active', 'expired'))
              ORDER BY h.id LIMIT max_rows)
            UNION ALL
            (SELECT h.id, h.order_ref, h.status, h.amount, h.expires_at, h.created_at, 0
               FROM credit.reservation h
              WHERE h.line_id = v_line AND h.status = 'released' AND h.id > v_after
                AND (v_status IS NULL OR v_status = 'released')
              ORDER BY h.id LIMIT max_rows)
            UNION ALL
            (SELECT h.id, h.order_ref, h.status, h.amount, h.expires_at, h.created_at, 0
               FROM credit.reservation h
              WHERE h.line_id = v_line AND h.status = 'converted' AND h.id > v_after
                AND (v_status IS NULL OR v_status = 'converted')
              ORDER BY h.id LIMIT max_rows)
            UNION ALL
            (SELECT h.id, h.order_ref, h.status, h.amount, h.expires_at, h.created_at, 0
               FROM credit.reservation h
              WHERE h.line_id = v_line AND h.status = 'expired' AND h.id > v_after
                AND (v_status IS NULL OR v_status = 'expired')
              ORDER BY h.id LIMIT max_rows)) p
     ORDER BY p.id
     LIMIT max_rows;
END
$$;
REVOKE ALL ON FUNCTION credit.list_reservations(text, text, text, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.list_reservations(text, text, text, bigint, integer) TO credit_app, credit_auditor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.list_reservations(text, text, text, bigint, integer) IS $doc$A page of a line's holds in one status, ascending reservation_id after after_reservation_id (keyset
paging: pass the last reservation_id of a page to get the next). status is the effective one: an active
hold past its expiry is listed as expired. A page costs what it returns, however many ended holds the
line has.
Arguments:
  wholesaler_id, retailer_id: the line.
  status: active, released, converted or expired; NULL: every status.
  after_reservation_id: the last reservation_id of the previous page; NULL: from the first.
  max_rows: the page size, 1 to 1,000.
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  P0002: no line for (wholesaler_id, retailer_id); the message starts with line_not_found.$doc$;
COMMENT ON TYPE credit.reservation_listing IS $doc$One row of list_reservations.$doc$;
COMMENT ON COLUMN credit.reservation_listing.reservation_id IS $doc$The hold's id: the page order and the paging key.$doc$;
COMMENT ON COLUMN credit.reservation_listing.order_ref IS $doc$The order.$doc$;
COMMENT ON COLUMN credit.reservation_listing.status IS $doc$active, released, converted or expired (effective: past its expiry reads expired).$doc$;
COMMENT ON COLUMN credit.reservation_listing.amount IS $doc$The order's total, after amendments.$doc$;
COMMENT ON COLUMN credit.reservation_listing.expires_at IS $doc$When the hold expires; NULL: never.$doc$;
COMMENT ON COLUMN credit.reservation_listing.created_at IS $doc$When the hold was granted.$doc$;
COMMENT ON COLUMN credit.reservation_listing.remaining_amount IS $doc$What it still holds toward the line's reserved: amount less what was shipped while active; 0.00 once it
has ended or expired.$doc$;
