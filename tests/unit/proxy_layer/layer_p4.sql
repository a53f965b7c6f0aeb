DO $role$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'credit_app') THEN CREATE ROLE credit_app NOLOGIN; END IF; END $role$;
DO $role$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'credit_auditor') THEN CREATE ROLE credit_auditor NOLOGIN; END IF; END $role$;
DO $role$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'credit_monitor') THEN CREATE ROLE credit_monitor NOLOGIN; END IF; END $role$;
GRANT USAGE ON SCHEMA credit TO credit_app;
GRANT USAGE ON SCHEMA credit TO credit_auditor;
GRANT USAGE ON SCHEMA credit TO credit_monitor;

SET ROLE credit_owner;

CREATE TYPE credit.aging_row AS (wholesaler_id text, retailer_id text, currency text, not_due numeric(1000,2), days_1_30 numeric(1000,2), days_31_60 numeric(1000,2), days_61_90 numeric(1000,2), days_over_90 numeric(1000,2), unapplied_credit numeric(1000,2), outstanding numeric(1000,2), oldest_unpaid_due_date date);

CREATE TYPE credit.amend_result AS (code text, reservation_id bigint, status text, amount numeric(1000,2), previous_amount numeric(1000,2), remaining_amount numeric(1000,2), available numeric(1000,2), shortfall numeric(1000,2), replayed boolean);

CREATE TYPE credit.available_result AS (code text, credit_limit numeric(1000,2), reserved numeric(1000,2), outstanding numeric(1000,2), available numeric(1000,2), status text, currency text, past_due numeric(1000,2), oldest_unpaid_due_date date, limit_valid_until timestamp with time zone);

CREATE TYPE credit.can_reserve_result AS (code text, can_reserve boolean, available numeric(1000,2), shortfall numeric(1000,2));

CREATE TYPE credit.conversion_result AS (code text, reservation_id bigint, status text, ledger_entry_id bigint, debited_amount numeric(1000,2), released_amount numeric(1000,2), due_date date, available numeric(1000,2), replayed boolean, remaining_amount numeric(1000,2));

CREATE TYPE credit.convert_result AS (code text, reservation_id bigint, status text, ledger_entry_id bigint, debited_amount numeric(1000,2), released_amount numeric(1000,2), due_date date, available numeric(1000,2), replayed boolean);

CREATE TYPE credit.entry_result AS (code text, ledger_entry_id bigint, outstanding numeric(1000,2), available numeric(1000,2), replayed boolean);

CREATE TYPE credit.event_row AS (event_id bigint, kind text, wholesaler_id text, retailer_id text, ref text, amount numeric(1000,2), data jsonb, created_at timestamp with time zone);

CREATE TYPE credit.limit_result AS (code text, credit_limit numeric(1000,2), reserved numeric(1000,2), outstanding numeric(1000,2), available numeric(1000,2));

CREATE TYPE credit.open_line_result AS (code text, line_id bigint, credit_limit numeric(1000,2), reserved numeric(1000,2), outstanding numeric(1000,2), available numeric(1000,2), status text, replayed boolean);

CREATE TYPE credit.overdue_policy_result AS (code text, grace_days integer, max_overdue_amount numeric(1000,2));

CREATE TYPE credit.release_result AS (code text, reservation_id bigint, status text, released_amount numeric(1000,2), available numeric(1000,2), replayed boolean);

CREATE TYPE credit.reservation_info AS (code text, reservation_id bigint, status text, amount numeric(1000,2), expires_at timestamp with time zone, created_at timestamp with time zone, released_at timestamp with time zone, release_reason text, converted_at timestamp with time zone, converted_amount numeric(1000,2), released_amount numeric(1000,2), ledger_entry_id bigint, due_date date, remaining_amount numeric(1000,2));

CREATE TYPE credit.reservation_listing AS (reservation_id bigint, order_ref text, status text, amount numeric(1000,2), expires_at timestamp with time zone, created_at timestamp with time zone, remaining_amount numeric(1000,2));

CREATE TYPE credit.reservation_result AS (code text, reservation_id bigint, status text, amount numeric(1000,2), expires_at timestamp with time zone, created_at timestamp with time zone, released_at timestamp with time zone, release_reason text, converted_at timestamp with time zone, converted_amount numeric(1000,2), released_amount numeric(1000,2), ledger_entry_id bigint, due_date date);

CREATE TYPE credit.reservation_row AS (reservation_id bigint, order_ref text, status text, amount numeric(1000,2), expires_at timestamp with time zone, created_at timestamp with time zone);

CREATE TYPE credit.reserve_result AS (code text, reservation_id bigint, status text, amount numeric(1000,2), available numeric(1000,2), shortfall numeric(1000,2), replayed boolean);

CREATE TYPE credit.status_result AS (code text, status text);

RESET ROLE;
CREATE FUNCTION credit_route.adjust_balance(wholesaler_id text, retailer_id text, adjustment_ref text, amount numeric, reason text) RETURNS credit.entry_result
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.adjust_balance;
$plproxy$;
ALTER FUNCTION credit_route.adjust_balance(wholesaler_id text, retailer_id text, adjustment_ref text, amount numeric, reason text) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.adjust_balance(wholesaler_id text, retailer_id text, adjustment_ref text, amount numeric, reason text) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.adjust_balance(wholesaler_id text, retailer_id text, adjustment_ref text, amount numeric, reason text) RETURNS credit.entry_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.adjust_balance(wholesaler_id, retailer_id, adjustment_ref, amount, reason);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.adjust_balance(wholesaler_id text, retailer_id text, adjustment_ref text, amount numeric, reason text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.adjust_balance(wholesaler_id text, retailer_id text, adjustment_ref text, amount numeric, reason text) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route.aging(as_of date, wholesaler_id text, retailer_id text) RETURNS SETOF credit.aging_row
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON ALL;
    TARGET credit.aging;
$plproxy$;
ALTER FUNCTION credit_route.aging(as_of date, wholesaler_id text, retailer_id text) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.aging(as_of date, wholesaler_id text, retailer_id text) FROM PUBLIC;
SET ROLE credit_owner;

RESET ROLE;
CREATE FUNCTION credit_route.aging_line(as_of date, wholesaler_id text, retailer_id text) RETURNS SETOF credit.aging_row
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.aging;
$plproxy$;
ALTER FUNCTION credit_route.aging_line(as_of date, wholesaler_id text, retailer_id text) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.aging_line(as_of date, wholesaler_id text, retailer_id text) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on every partition; the rows are merged as a single server returns them.
CREATE FUNCTION credit.aging(as_of date DEFAULT CURRENT_DATE, wholesaler_id text DEFAULT NULL::text, retailer_id text DEFAULT NULL::text) RETURNS SETOF credit.aging_row
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    IF wholesaler_id IS NOT NULL AND retailer_id IS NOT NULL THEN
        RETURN QUERY SELECT * FROM credit_route.aging_line(as_of, wholesaler_id, retailer_id) px_row;
    ELSE
        RETURN QUERY SELECT * FROM credit_route.aging(as_of, wholesaler_id, retailer_id) px_row ORDER BY px_row.wholesaler_id, px_row.retailer_id;
    END IF;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, CASE WHEN wholesaler_id IS NOT NULL AND retailer_id IS NOT NULL THEN credit._line_hash(wholesaler_id, retailer_id) & 3 END, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.aging(as_of date, wholesaler_id text, retailer_id text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.aging(as_of date, wholesaler_id text, retailer_id text) TO credit_app;
GRANT EXECUTE ON FUNCTION credit.aging(as_of date, wholesaler_id text, retailer_id text) TO credit_auditor;

RESET ROLE;
CREATE FUNCTION credit_route.amend_reservation(wholesaler_id text, retailer_id text, order_ref text, amount numeric, amend_ref text) RETURNS credit.amend_result
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.amend_reservation;
$plproxy$;
ALTER FUNCTION credit_route.amend_reservation(wholesaler_id text, retailer_id text, order_ref text, amount numeric, amend_ref text) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.amend_reservation(wholesaler_id text, retailer_id text, order_ref text, amount numeric, amend_ref text) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.amend_reservation(wholesaler_id text, retailer_id text, order_ref text, amount numeric, amend_ref text) RETURNS credit.amend_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.amend_reservation(wholesaler_id, retailer_id, order_ref, amount, amend_ref);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.amend_reservation(wholesaler_id text, retailer_id text, order_ref text, amount numeric, amend_ref text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.amend_reservation(wholesaler_id text, retailer_id text, order_ref text, amount numeric, amend_ref text) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route.block_line(wholesaler_id text, retailer_id text, reason text) RETURNS credit.status_result
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.block_line;
$plproxy$;
ALTER FUNCTION credit_route.block_line(wholesaler_id text, retailer_id text, reason text) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.block_line(wholesaler_id text, retailer_id text, reason text) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.block_line(wholesaler_id text, retailer_id text, reason text) RETURNS credit.status_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.block_line(wholesaler_id, retailer_id, reason);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.block_line(wholesaler_id text, retailer_id text, reason text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.block_line(wholesaler_id text, retailer_id text, reason text) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route.can_reserve(wholesaler_id text, retailer_id text, amount numeric) RETURNS credit.can_reserve_result
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.can_reserve;
$plproxy$;
ALTER FUNCTION credit_route.can_reserve(wholesaler_id text, retailer_id text, amount numeric) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.can_reserve(wholesaler_id text, retailer_id text, amount numeric) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.can_reserve(wholesaler_id text, retailer_id text, amount numeric) RETURNS credit.can_reserve_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.can_reserve(wholesaler_id, retailer_id, amount);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.can_reserve(wholesaler_id text, retailer_id text, amount numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.can_reserve(wholesaler_id text, retailer_id text, amount numeric) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route.convert_to_debit(wholesaler_id text, retailer_id text, order_ref text, amount numeric, due_date date, shipment_ref text) RETURNS credit.conversion_result
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.convert_to_debit;
$plproxy$;
ALTER FUNCTION credit_route.convert_to_debit(wholesaler_id text, retailer_id text, order_ref text, amount numeric, due_date date, shipment_ref text) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.convert_to_debit(wholesaler_id text, retailer_id text, order_ref text, amount numeric, due_date date, shipment_ref text) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.convert_to_debit(wholesaler_id text, retailer_id text, order_ref text, amount numeric DEFAULT NULL::numeric, due_date date DEFAULT NULL::date, shipment_ref text DEFAULT NULL::text) RETURNS credit.conversion_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.convert_to_debit(wholesaler_id, retailer_id, order_ref, amount, due_date, shipment_ref);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.convert_to_debit(wholesaler_id text, retailer_id text, order_ref text, amount numeric, due_date date, shipment_ref text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.convert_to_debit(wholesaler_id text, retailer_id text, order_ref text, amount numeric, due_date date, shipment_ref text) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route._convert_to_debit_batch_check(px_partition integer, wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], shipment_refs text[]) RETURNS void
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON px_partition;
    SELECT credit._convert_to_debit_batch_check(wholesaler_ids, retailer_ids, order_refs, amounts, shipment_refs);
$plproxy$;
ALTER FUNCTION credit_route._convert_to_debit_batch_check(px_partition integer, wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], shipment_refs text[]) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route._convert_to_debit_batch_check(px_partition integer, wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], shipment_refs text[]) FROM PUBLIC;
SET ROLE credit_owner;

RESET ROLE;
CREATE FUNCTION credit_route.convert_to_debit_batch(px_items integer[], wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], shipment_refs text[]) RETURNS TABLE(item integer, code text, reservation_id bigint, status text, ledger_entry_id bigint, debited_amount numeric, released_amount numeric, due_date date, available numeric, replayed boolean, remaining_amount numeric)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    SPLIT px_items, wholesaler_ids, retailer_ids, order_refs, amounts, shipment_refs;
    RUN ON credit._line_hash(wholesaler_ids, retailer_ids);
    SELECT (px_items)[px_row.item] AS item, px_row.code, px_row.reservation_id, px_row.status, px_row.ledger_entry_id, px_row.debited_amount, px_row.released_amount, px_row.due_date, px_row.available, px_row.replayed, px_row.remaining_amount
      FROM credit.convert_to_debit_batch(wholesaler_ids, retailer_ids, order_refs, amounts, shipment_refs) px_row;
$plproxy$;
ALTER FUNCTION credit_route.convert_to_debit_batch(px_items integer[], wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], shipment_refs text[]) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.convert_to_debit_batch(px_items integer[], wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], shipment_refs text[]) FROM PUBLIC;
SET ROLE credit_owner;

-- Split by partition; validated as a whole first; rows in item order.
CREATE FUNCTION credit.convert_to_debit_batch(wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[] DEFAULT NULL::numeric[], shipment_refs text[] DEFAULT NULL::text[]) RETURNS TABLE(item integer, code text, reservation_id bigint, status text, ledger_entry_id bigint, debited_amount numeric, released_amount numeric, due_date date, available numeric, replayed boolean, remaining_amount numeric)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    PERFORM credit_route._convert_to_debit_batch_check(credit._line_hash(wholesaler_ids[1], retailer_ids[1]) & 3, wholesaler_ids, retailer_ids, order_refs, amounts, shipment_refs);
    RETURN QUERY SELECT * FROM credit_route.convert_to_debit_batch(
        ARRAY(SELECT generate_series(1, cardinality(wholesaler_ids))), wholesaler_ids, retailer_ids, coalesce(order_refs, array_fill(NULL::text, ARRAY[cardinality(wholesaler_ids)])), coalesce(amounts, array_fill(NULL::numeric, ARRAY[cardinality(wholesaler_ids)])), coalesce(shipment_refs, array_fill(NULL::text, ARRAY[cardinality(wholesaler_ids)]))) px_row ORDER BY px_row.item;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, NULL, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.convert_to_debit_batch(wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], shipment_refs text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.convert_to_debit_batch(wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], shipment_refs text[]) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route.events_after(px_partition integer, after_event_id bigint, max_rows integer, wholesaler_id text) RETURNS SETOF credit.event_row
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON px_partition;
    SELECT px_row.event_id, px_row.kind, px_row.wholesaler_id, px_row.retailer_id, px_row.ref, px_row.amount, px_row.data, px_row.created_at FROM credit.events_after(after_event_id, max_rows, wholesaler_id) px_row;
$plproxy$;
ALTER FUNCTION credit_route.events_after(px_partition integer, after_event_id bigint, max_rows integer, wholesaler_id text) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.events_after(px_partition integer, after_event_id bigint, max_rows integer, wholesaler_id text) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition named by partition.
CREATE FUNCTION credit.events_after(after_event_id bigint DEFAULT 0, max_rows integer DEFAULT 100, wholesaler_id text DEFAULT NULL::text, partition integer DEFAULT NULL) RETURNS SETOF credit.event_row
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    IF partition IS NULL OR partition NOT BETWEEN 0 AND 3 THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('partition must be between 0 and 3 (credit.partitions() lists them), got %s', coalesce(partition::text, 'NULL'));
    END IF;
    RETURN QUERY SELECT * FROM credit_route.events_after(partition, after_event_id, max_rows, wholesaler_id) px_row;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, partition, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.events_after(after_event_id bigint, max_rows integer, wholesaler_id text, partition integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.events_after(after_event_id bigint, max_rows integer, wholesaler_id text, partition integer) TO credit_app;
GRANT EXECUTE ON FUNCTION credit.events_after(after_event_id bigint, max_rows integer, wholesaler_id text, partition integer) TO credit_auditor;

RESET ROLE;
CREATE FUNCTION credit_route.expire_reservations(px_partition integer, max_count integer) RETURNS integer
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON px_partition;
    SELECT credit.expire_reservations(max_count);
$plproxy$;
ALTER FUNCTION credit_route.expire_reservations(px_partition integer, max_count integer) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.expire_reservations(px_partition integer, max_count integer) FROM PUBLIC;
SET ROLE credit_owner;

-- Each partition in turn gets what is left of max_count.
CREATE FUNCTION credit.expire_reservations(max_count integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
    px_partition integer := 0;
    px_done integer := 0;
BEGIN
    WHILE px_partition < 4 LOOP
        px_done := px_done + credit_route.expire_reservations(px_partition, max_count - px_done);
        EXIT WHEN px_done >= max_count;
        px_partition := px_partition + 1;
    END LOOP;
    RETURN px_done;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, px_partition, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.expire_reservations(max_count integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.expire_reservations(max_count integer) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route.get_available(wholesaler_id text, retailer_id text) RETURNS credit.available_result
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.get_available;
$plproxy$;
ALTER FUNCTION credit_route.get_available(wholesaler_id text, retailer_id text) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.get_available(wholesaler_id text, retailer_id text) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.get_available(wholesaler_id text, retailer_id text) RETURNS credit.available_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.get_available(wholesaler_id, retailer_id);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.get_available(wholesaler_id text, retailer_id text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.get_available(wholesaler_id text, retailer_id text) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route.get_reservation(wholesaler_id text, retailer_id text, order_ref text) RETURNS credit.reservation_info
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.get_reservation;
$plproxy$;
ALTER FUNCTION credit_route.get_reservation(wholesaler_id text, retailer_id text, order_ref text) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.get_reservation(wholesaler_id text, retailer_id text, order_ref text) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.get_reservation(wholesaler_id text, retailer_id text, order_ref text) RETURNS credit.reservation_info
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.get_reservation(wholesaler_id, retailer_id, order_ref);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.get_reservation(wholesaler_id text, retailer_id text, order_ref text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.get_reservation(wholesaler_id text, retailer_id text, order_ref text) TO credit_app;
GRANT EXECUTE ON FUNCTION credit.get_reservation(wholesaler_id text, retailer_id text, order_ref text) TO credit_auditor;

RESET ROLE;
CREATE FUNCTION credit_route.list_lines(wholesaler_id text, after_retailer_id text, max_rows integer) RETURNS TABLE(retailer_id text, line_id bigint, status text, currency text, credit_limit numeric, reserved numeric, outstanding numeric, available numeric, past_due numeric)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON ALL;
    TARGET credit.list_lines;
$plproxy$;
ALTER FUNCTION credit_route.list_lines(wholesaler_id text, after_retailer_id text, max_rows integer) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.list_lines(wholesaler_id text, after_retailer_id text, max_rows integer) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on every partition; the rows are merged as a single server returns them.
CREATE FUNCTION credit.list_lines(wholesaler_id text, after_retailer_id text DEFAULT NULL::text, max_rows integer DEFAULT 100) RETURNS TABLE(retailer_id text, line_id bigint, status text, currency text, credit_limit numeric, reserved numeric, outstanding numeric, available numeric, past_due numeric)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN QUERY SELECT * FROM credit_route.list_lines(wholesaler_id, after_retailer_id, max_rows) px_row ORDER BY px_row.retailer_id LIMIT greatest(max_rows, 1);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, NULL, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.list_lines(wholesaler_id text, after_retailer_id text, max_rows integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.list_lines(wholesaler_id text, after_retailer_id text, max_rows integer) TO credit_app;
GRANT EXECUTE ON FUNCTION credit.list_lines(wholesaler_id text, after_retailer_id text, max_rows integer) TO credit_auditor;

RESET ROLE;
CREATE FUNCTION credit_route.list_reservations(wholesaler_id text, retailer_id text, status text, after_reservation_id bigint, max_rows integer) RETURNS SETOF credit.reservation_listing
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.list_reservations;
$plproxy$;
ALTER FUNCTION credit_route.list_reservations(wholesaler_id text, retailer_id text, status text, after_reservation_id bigint, max_rows integer) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.list_reservations(wholesaler_id text, retailer_id text, status text, after_reservation_id bigint, max_rows integer) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.list_reservations(wholesaler_id text, retailer_id text, status text DEFAULT 'active'::text, after_reservation_id bigint DEFAULT NULL::bigint, max_rows integer DEFAULT 100) RETURNS SETOF credit.reservation_listing
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN QUERY SELECT * FROM credit_route.list_reservations(wholesaler_id, retailer_id, status, after_reservation_id, max_rows) px_row;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.list_reservations(wholesaler_id text, retailer_id text, status text, after_reservation_id bigint, max_rows integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.list_reservations(wholesaler_id text, retailer_id text, status text, after_reservation_id bigint, max_rows integer) TO credit_app;
GRANT EXECUTE ON FUNCTION credit.list_reservations(wholesaler_id text, retailer_id text, status text, after_reservation_id bigint, max_rows integer) TO credit_auditor;

RESET ROLE;
CREATE FUNCTION credit_route.open_line(wholesaler_id text, retailer_id text, credit_limit numeric, currency text, payment_terms_days integer) RETURNS credit.open_line_result
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.open_line;
$plproxy$;
ALTER FUNCTION credit_route.open_line(wholesaler_id text, retailer_id text, credit_limit numeric, currency text, payment_terms_days integer) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.open_line(wholesaler_id text, retailer_id text, credit_limit numeric, currency text, payment_terms_days integer) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.open_line(wholesaler_id text, retailer_id text, credit_limit numeric, currency text DEFAULT 'INR'::text, payment_terms_days integer DEFAULT 30) RETURNS credit.open_line_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.open_line(wholesaler_id, retailer_id, credit_limit, currency, payment_terms_days);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.open_line(wholesaler_id text, retailer_id text, credit_limit numeric, currency text, payment_terms_days integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.open_line(wholesaler_id text, retailer_id text, credit_limit numeric, currency text, payment_terms_days integer) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route.prune_events(px_partition integer, older_than interval) RETURNS integer
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON px_partition;
    SELECT credit.prune_events(older_than);
$plproxy$;
ALTER FUNCTION credit_route.prune_events(px_partition integer, older_than interval) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.prune_events(px_partition integer, older_than interval) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on each partition in turn; returns the sum.
CREATE FUNCTION credit.prune_events(older_than interval) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
    px_partition integer := 0;
    px_done integer := 0;
BEGIN
    WHILE px_partition < 4 LOOP
        px_done := px_done + credit_route.prune_events(px_partition, older_than);
        px_partition := px_partition + 1;
    END LOOP;
    RETURN px_done;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, px_partition, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.prune_events(older_than interval) FROM PUBLIC;

RESET ROLE;
CREATE FUNCTION credit_route.reconcile() RETURNS TABLE(check_name text, wholesaler_id text, retailer_id text, expected numeric, actual numeric, detail text)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON ALL;
    SELECT px_row.check_name, px_row.wholesaler_id, px_row.retailer_id, px_row.expected, px_row.actual, px_row.detail FROM credit.reconcile() px_row
    UNION ALL SELECT px_row.check_name, px_row.wholesaler_id, px_row.retailer_id, px_row.expected, px_row.actual, px_row.detail FROM credit._misplaced_lines() px_row;
$plproxy$;
ALTER FUNCTION credit_route.reconcile() OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.reconcile() FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on every partition; the rows are merged as a single server returns them.
CREATE FUNCTION credit.reconcile() RETURNS TABLE(check_name text, wholesaler_id text, retailer_id text, expected numeric, actual numeric, detail text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN QUERY SELECT * FROM credit_route.reconcile() px_row;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, NULL, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.reconcile() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.reconcile() TO credit_app;
GRANT EXECUTE ON FUNCTION credit.reconcile() TO credit_auditor;

RESET ROLE;
CREATE FUNCTION credit_route.record_payment(wholesaler_id text, retailer_id text, payment_ref text, amount numeric, applies_to text[]) RETURNS credit.entry_result
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.record_payment;
$plproxy$;
ALTER FUNCTION credit_route.record_payment(wholesaler_id text, retailer_id text, payment_ref text, amount numeric, applies_to text[]) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.record_payment(wholesaler_id text, retailer_id text, payment_ref text, amount numeric, applies_to text[]) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.record_payment(wholesaler_id text, retailer_id text, payment_ref text, amount numeric, applies_to text[] DEFAULT NULL::text[]) RETURNS credit.entry_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.record_payment(wholesaler_id, retailer_id, payment_ref, amount, applies_to);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.record_payment(wholesaler_id text, retailer_id text, payment_ref text, amount numeric, applies_to text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.record_payment(wholesaler_id text, retailer_id text, payment_ref text, amount numeric, applies_to text[]) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route._record_payment_batch_check(px_partition integer, wholesaler_ids text[], retailer_ids text[], payment_refs text[], amounts numeric[]) RETURNS void
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON px_partition;
    SELECT credit._record_payment_batch_check(wholesaler_ids, retailer_ids, payment_refs, amounts);
$plproxy$;
ALTER FUNCTION credit_route._record_payment_batch_check(px_partition integer, wholesaler_ids text[], retailer_ids text[], payment_refs text[], amounts numeric[]) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route._record_payment_batch_check(px_partition integer, wholesaler_ids text[], retailer_ids text[], payment_refs text[], amounts numeric[]) FROM PUBLIC;
SET ROLE credit_owner;

RESET ROLE;
CREATE FUNCTION credit_route.record_payment_batch(px_items integer[], wholesaler_ids text[], retailer_ids text[], payment_refs text[], amounts numeric[]) RETURNS TABLE(item integer, code text, ledger_entry_id bigint, outstanding numeric, available numeric, replayed boolean)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    SPLIT px_items, wholesaler_ids, retailer_ids, payment_refs, amounts;
    RUN ON credit._line_hash(wholesaler_ids, retailer_ids);
    SELECT (px_items)[px_row.item] AS item, px_row.code, px_row.ledger_entry_id, px_row.outstanding, px_row.available, px_row.replayed
      FROM credit.record_payment_batch(wholesaler_ids, retailer_ids, payment_refs, amounts) px_row;
$plproxy$;
ALTER FUNCTION credit_route.record_payment_batch(px_items integer[], wholesaler_ids text[], retailer_ids text[], payment_refs text[], amounts numeric[]) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.record_payment_batch(px_items integer[], wholesaler_ids text[], retailer_ids text[], payment_refs text[], amounts numeric[]) FROM PUBLIC;
SET ROLE credit_owner;

-- Split by partition; validated as a whole first; rows in item order.
CREATE FUNCTION credit.record_payment_batch(wholesaler_ids text[], retailer_ids text[], payment_refs text[], amounts numeric[]) RETURNS TABLE(item integer, code text, ledger_entry_id bigint, outstanding numeric, available numeric, replayed boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    PERFORM credit_route._record_payment_batch_check(credit._line_hash(wholesaler_ids[1], retailer_ids[1]) & 3, wholesaler_ids, retailer_ids, payment_refs, amounts);
    RETURN QUERY SELECT * FROM credit_route.record_payment_batch(
        ARRAY(SELECT generate_series(1, cardinality(wholesaler_ids))), wholesaler_ids, retailer_ids, coalesce(payment_refs, array_fill(NULL::text, ARRAY[cardinality(wholesaler_ids)])), coalesce(amounts, array_fill(NULL::numeric, ARRAY[cardinality(wholesaler_ids)]))) px_row ORDER BY px_row.item;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, NULL, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.record_payment_batch(wholesaler_ids text[], retailer_ids text[], payment_refs text[], amounts numeric[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.record_payment_batch(wholesaler_ids text[], retailer_ids text[], payment_refs text[], amounts numeric[]) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route.record_reconcile(px_partition integer, keep interval) RETURNS integer
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON px_partition;
    SELECT credit.record_reconcile(keep);
$plproxy$;
ALTER FUNCTION credit_route.record_reconcile(px_partition integer, keep interval) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.record_reconcile(px_partition integer, keep interval) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on each partition in turn; returns the sum.
CREATE FUNCTION credit.record_reconcile(keep interval DEFAULT '7 days'::interval) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
    px_partition integer := 0;
    px_done integer := 0;
BEGIN
    WHILE px_partition < 4 LOOP
        px_done := px_done + credit_route.record_reconcile(px_partition, keep);
        px_partition := px_partition + 1;
    END LOOP;
    RETURN px_done;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, px_partition, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.record_reconcile(keep interval) FROM PUBLIC;

RESET ROLE;
CREATE FUNCTION credit_route.release_reservation(wholesaler_id text, retailer_id text, order_ref text, reason text) RETURNS credit.release_result
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.release_reservation;
$plproxy$;
ALTER FUNCTION credit_route.release_reservation(wholesaler_id text, retailer_id text, order_ref text, reason text) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.release_reservation(wholesaler_id text, retailer_id text, order_ref text, reason text) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.release_reservation(wholesaler_id text, retailer_id text, order_ref text, reason text DEFAULT NULL::text) RETURNS credit.release_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.release_reservation(wholesaler_id, retailer_id, order_ref, reason);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.release_reservation(wholesaler_id text, retailer_id text, order_ref text, reason text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.release_reservation(wholesaler_id text, retailer_id text, order_ref text, reason text) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route.reserve_credit(wholesaler_id text, retailer_id text, order_ref text, amount numeric, expires_in interval) RETURNS credit.reserve_result
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.reserve_credit;
$plproxy$;
ALTER FUNCTION credit_route.reserve_credit(wholesaler_id text, retailer_id text, order_ref text, amount numeric, expires_in interval) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.reserve_credit(wholesaler_id text, retailer_id text, order_ref text, amount numeric, expires_in interval) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.reserve_credit(wholesaler_id text, retailer_id text, order_ref text, amount numeric, expires_in interval DEFAULT NULL::interval) RETURNS credit.reserve_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.reserve_credit(wholesaler_id, retailer_id, order_ref, amount, expires_in);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.reserve_credit(wholesaler_id text, retailer_id text, order_ref text, amount numeric, expires_in interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.reserve_credit(wholesaler_id text, retailer_id text, order_ref text, amount numeric, expires_in interval) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route._reserve_credit_batch_check(px_partition integer, wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], expires_in interval) RETURNS void
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON px_partition;
    SELECT credit._reserve_credit_batch_check(wholesaler_ids, retailer_ids, order_refs, amounts, expires_in);
$plproxy$;
ALTER FUNCTION credit_route._reserve_credit_batch_check(px_partition integer, wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], expires_in interval) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route._reserve_credit_batch_check(px_partition integer, wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], expires_in interval) FROM PUBLIC;
SET ROLE credit_owner;

RESET ROLE;
CREATE FUNCTION credit_route.reserve_credit_batch(px_items integer[], wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], expires_in interval) RETURNS TABLE(item integer, code text, reservation_id bigint, status text, amount numeric, available numeric, shortfall numeric, replayed boolean)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    SPLIT px_items, wholesaler_ids, retailer_ids, order_refs, amounts;
    RUN ON credit._line_hash(wholesaler_ids, retailer_ids);
    SELECT (px_items)[px_row.item] AS item, px_row.code, px_row.reservation_id, px_row.status, px_row.amount, px_row.available, px_row.shortfall, px_row.replayed
      FROM credit.reserve_credit_batch(wholesaler_ids, retailer_ids, order_refs, amounts, expires_in) px_row;
$plproxy$;
ALTER FUNCTION credit_route.reserve_credit_batch(px_items integer[], wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], expires_in interval) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.reserve_credit_batch(px_items integer[], wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], expires_in interval) FROM PUBLIC;
SET ROLE credit_owner;

-- Split by partition; validated as a whole first; rows in item order.
CREATE FUNCTION credit.reserve_credit_batch(wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], expires_in interval DEFAULT NULL::interval) RETURNS TABLE(item integer, code text, reservation_id bigint, status text, amount numeric, available numeric, shortfall numeric, replayed boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    PERFORM credit_route._reserve_credit_batch_check(credit._line_hash(wholesaler_ids[1], retailer_ids[1]) & 3, wholesaler_ids, retailer_ids, order_refs, amounts, expires_in);
    RETURN QUERY SELECT * FROM credit_route.reserve_credit_batch(
        ARRAY(SELECT generate_series(1, cardinality(wholesaler_ids))), wholesaler_ids, retailer_ids, coalesce(order_refs, array_fill(NULL::text, ARRAY[cardinality(wholesaler_ids)])), coalesce(amounts, array_fill(NULL::numeric, ARRAY[cardinality(wholesaler_ids)])), expires_in) px_row ORDER BY px_row.item;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, NULL, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.reserve_credit_batch(wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], expires_in interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.reserve_credit_batch(wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[], expires_in interval) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route.reverse_debit(wholesaler_id text, retailer_id text, order_ref text, reversal_ref text, amount numeric, reason text) RETURNS credit.entry_result
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.reverse_debit;
$plproxy$;
ALTER FUNCTION credit_route.reverse_debit(wholesaler_id text, retailer_id text, order_ref text, reversal_ref text, amount numeric, reason text) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.reverse_debit(wholesaler_id text, retailer_id text, order_ref text, reversal_ref text, amount numeric, reason text) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.reverse_debit(wholesaler_id text, retailer_id text, order_ref text, reversal_ref text, amount numeric, reason text) RETURNS credit.entry_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.reverse_debit(wholesaler_id, retailer_id, order_ref, reversal_ref, amount, reason);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.reverse_debit(wholesaler_id text, retailer_id text, order_ref text, reversal_ref text, amount numeric, reason text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.reverse_debit(wholesaler_id text, retailer_id text, order_ref text, reversal_ref text, amount numeric, reason text) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route.set_credit_limit(wholesaler_id text, retailer_id text, credit_limit numeric, reason text, valid_until timestamp with time zone) RETURNS credit.limit_result
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.set_credit_limit;
$plproxy$;
ALTER FUNCTION credit_route.set_credit_limit(wholesaler_id text, retailer_id text, credit_limit numeric, reason text, valid_until timestamp with time zone) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.set_credit_limit(wholesaler_id text, retailer_id text, credit_limit numeric, reason text, valid_until timestamp with time zone) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.set_credit_limit(wholesaler_id text, retailer_id text, credit_limit numeric, reason text, valid_until timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS credit.limit_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.set_credit_limit(wholesaler_id, retailer_id, credit_limit, reason, valid_until);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.set_credit_limit(wholesaler_id text, retailer_id text, credit_limit numeric, reason text, valid_until timestamp with time zone) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.set_credit_limit(wholesaler_id text, retailer_id text, credit_limit numeric, reason text, valid_until timestamp with time zone) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route.set_overdue_policy(wholesaler_id text, retailer_id text, grace_days integer, max_overdue_amount numeric, reason text) RETURNS credit.overdue_policy_result
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.set_overdue_policy;
$plproxy$;
ALTER FUNCTION credit_route.set_overdue_policy(wholesaler_id text, retailer_id text, grace_days integer, max_overdue_amount numeric, reason text) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.set_overdue_policy(wholesaler_id text, retailer_id text, grace_days integer, max_overdue_amount numeric, reason text) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.set_overdue_policy(wholesaler_id text, retailer_id text, grace_days integer, max_overdue_amount numeric DEFAULT 0, reason text DEFAULT NULL::text) RETURNS credit.overdue_policy_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.set_overdue_policy(wholesaler_id, retailer_id, grace_days, max_overdue_amount, reason);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.set_overdue_policy(wholesaler_id text, retailer_id text, grace_days integer, max_overdue_amount numeric, reason text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.set_overdue_policy(wholesaler_id text, retailer_id text, grace_days integer, max_overdue_amount numeric, reason text) TO credit_app;

RESET ROLE;
CREATE FUNCTION credit_route.statement(wholesaler_id text, retailer_id text, from_date date, to_date date) RETURNS TABLE(entry_id bigint, created_at timestamp with time zone, entry_type text, ref text, memo text, due_date date, amount numeric, balance numeric)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.statement;
$plproxy$;
ALTER FUNCTION credit_route.statement(wholesaler_id text, retailer_id text, from_date date, to_date date) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.statement(wholesaler_id text, retailer_id text, from_date date, to_date date) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.statement(wholesaler_id text, retailer_id text, from_date date, to_date date) RETURNS TABLE(entry_id bigint, created_at timestamp with time zone, entry_type text, ref text, memo text, due_date date, amount numeric, balance numeric)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN QUERY SELECT * FROM credit_route.statement(wholesaler_id, retailer_id, from_date, to_date) px_row;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.statement(wholesaler_id text, retailer_id text, from_date date, to_date date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.statement(wholesaler_id text, retailer_id text, from_date date, to_date date) TO credit_app;
GRANT EXECUTE ON FUNCTION credit.statement(wholesaler_id text, retailer_id text, from_date date, to_date date) TO credit_auditor;

RESET ROLE;
CREATE FUNCTION credit_route.unblock_line(wholesaler_id text, retailer_id text, reason text) RETURNS credit.status_result
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.unblock_line;
$plproxy$;
ALTER FUNCTION credit_route.unblock_line(wholesaler_id text, retailer_id text, reason text) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.unblock_line(wholesaler_id text, retailer_id text, reason text) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.unblock_line(wholesaler_id text, retailer_id text, reason text) RETURNS credit.status_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.unblock_line(wholesaler_id, retailer_id, reason);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 3, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.unblock_line(wholesaler_id text, retailer_id text, reason text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.unblock_line(wholesaler_id text, retailer_id text, reason text) TO credit_app;

CREATE FUNCTION credit.partitions() RETURNS TABLE(partition integer)
LANGUAGE sql IMMUTABLE AS $$ SELECT generate_series(0, 3) $$;
REVOKE ALL ON FUNCTION credit.partitions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.partitions() TO credit_app;
GRANT EXECUTE ON FUNCTION credit.partitions() TO credit_auditor;
COMMENT ON FUNCTION credit.partitions() IS $doc$The partitions of this deployment, 0 to N-1: one event feed each (events_after's partition).$doc$;

RESET ROLE;
CREATE FUNCTION credit_route.line_summary_rows() RETURNS TABLE(line_id bigint, wholesaler_id text, retailer_id text, status text, currency text, credit_limit numeric, reserved numeric, outstanding numeric, available numeric, utilization_pct numeric, active_holds bigint, oldest_active_hold_age interval, overdue_amount numeric)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON ALL;
    SELECT px_row.line_id, px_row.wholesaler_id, px_row.retailer_id, px_row.status, px_row.currency, px_row.credit_limit, px_row.reserved, px_row.outstanding, px_row.available, px_row.utilization_pct, px_row.active_holds, px_row.oldest_active_hold_age, px_row.overdue_amount FROM credit.line_summary px_row;
$plproxy$;
ALTER FUNCTION credit_route.line_summary_rows() OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.line_summary_rows() FROM PUBLIC;
SET ROLE credit_owner;

-- The rows of credit.line_summary on every partition.
CREATE FUNCTION credit._line_summary_rows() RETURNS TABLE(line_id bigint, wholesaler_id text, retailer_id text, status text, currency text, credit_limit numeric, reserved numeric, outstanding numeric, available numeric, utilization_pct numeric, active_holds bigint, oldest_active_hold_age interval, overdue_amount numeric)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN QUERY SELECT * FROM credit_route.line_summary_rows() px_row;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, NULL, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit._line_summary_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit._line_summary_rows() TO credit_auditor;

CREATE VIEW credit.line_summary AS SELECT * FROM credit._line_summary_rows();
GRANT SELECT ON credit.line_summary TO credit_auditor;

RESET ROLE;
CREATE FUNCTION credit_route.monitor_book_rows() RETURNS TABLE(currency text, status text, lines bigint, credit_limit numeric, reserved numeric, outstanding numeric, past_due numeric, lines_over_90pct bigint, max_utilization_pct numeric)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON ALL;
    SELECT px_row.currency, px_row.status, px_row.lines, px_row.credit_limit, px_row.reserved, px_row.outstanding, px_row.past_due, px_row.lines_over_90pct, px_row.max_utilization_pct FROM credit.monitor_book px_row;
$plproxy$;
ALTER FUNCTION credit_route.monitor_book_rows() OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.monitor_book_rows() FROM PUBLIC;
SET ROLE credit_owner;

-- The rows of credit.monitor_book on every partition.
CREATE FUNCTION credit._monitor_book_rows() RETURNS TABLE(currency text, status text, lines bigint, credit_limit numeric, reserved numeric, outstanding numeric, past_due numeric, lines_over_90pct bigint, max_utilization_pct numeric)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN QUERY SELECT * FROM credit_route.monitor_book_rows() px_row;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, NULL, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit._monitor_book_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit._monitor_book_rows() TO credit_auditor;
GRANT EXECUTE ON FUNCTION credit._monitor_book_rows() TO credit_monitor;

CREATE VIEW credit.monitor_book AS SELECT currency, status, sum(lines)::bigint AS lines, sum(credit_limit)::numeric AS credit_limit, sum(reserved)::numeric AS reserved, sum(outstanding)::numeric AS outstanding, sum(past_due)::numeric AS past_due, sum(lines_over_90pct)::bigint AS lines_over_90pct, max(max_utilization_pct)::numeric AS max_utilization_pct FROM credit._monitor_book_rows() GROUP BY currency, status;
GRANT SELECT ON credit.monitor_book TO credit_auditor;
GRANT SELECT ON credit.monitor_book TO credit_monitor;

RESET ROLE;
CREATE FUNCTION credit_route.monitor_events_rows() RETURNS TABLE(events_waiting bigint, oldest_waiting_seconds numeric)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON ALL;
    SELECT px_row.events_waiting, px_row.oldest_waiting_seconds FROM credit.monitor_events px_row;
$plproxy$;
ALTER FUNCTION credit_route.monitor_events_rows() OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.monitor_events_rows() FROM PUBLIC;
SET ROLE credit_owner;

-- The rows of credit.monitor_events on every partition.
CREATE FUNCTION credit._monitor_events_rows() RETURNS TABLE(events_waiting bigint, oldest_waiting_seconds numeric)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN QUERY SELECT * FROM credit_route.monitor_events_rows() px_row;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, NULL, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit._monitor_events_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit._monitor_events_rows() TO credit_auditor;
GRANT EXECUTE ON FUNCTION credit._monitor_events_rows() TO credit_monitor;

CREATE VIEW credit.monitor_events AS SELECT sum(events_waiting)::bigint AS events_waiting, max(oldest_waiting_seconds)::numeric AS oldest_waiting_seconds FROM credit._monitor_events_rows();
GRANT SELECT ON credit.monitor_events TO credit_auditor;
GRANT SELECT ON credit.monitor_events TO credit_monitor;

RESET ROLE;
CREATE FUNCTION credit_route.monitor_lines_rows() RETURNS TABLE(line_id bigint, wholesaler_id text, retailer_id text, status text, currency text, credit_limit numeric, reserved numeric, outstanding numeric, available numeric, utilization_pct numeric)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON ALL;
    SELECT px_row.line_id, px_row.wholesaler_id, px_row.retailer_id, px_row.status, px_row.currency, px_row.credit_limit, px_row.reserved, px_row.outstanding, px_row.available, px_row.utilization_pct FROM credit.monitor_lines px_row;
$plproxy$;
ALTER FUNCTION credit_route.monitor_lines_rows() OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.monitor_lines_rows() FROM PUBLIC;
SET ROLE credit_owner;

-- The rows of credit.monitor_lines on every partition.
CREATE FUNCTION credit._monitor_lines_rows() RETURNS TABLE(line_id bigint, wholesaler_id text, retailer_id text, status text, currency text, credit_limit numeric, reserved numeric, outstanding numeric, available numeric, utilization_pct numeric)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN QUERY SELECT * FROM credit_route.monitor_lines_rows() px_row;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, NULL, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit._monitor_lines_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit._monitor_lines_rows() TO credit_auditor;

CREATE VIEW credit.monitor_lines AS SELECT * FROM credit._monitor_lines_rows();
GRANT SELECT ON credit.monitor_lines TO credit_auditor;

RESET ROLE;
CREATE FUNCTION credit_route.monitor_lock_waits_rows() RETURNS TABLE(waiters bigint, longest_wait_seconds numeric)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON ALL;
    SELECT px_row.waiters, px_row.longest_wait_seconds FROM credit.monitor_lock_waits px_row;
$plproxy$;
ALTER FUNCTION credit_route.monitor_lock_waits_rows() OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.monitor_lock_waits_rows() FROM PUBLIC;
SET ROLE credit_owner;

-- The rows of credit.monitor_lock_waits on every partition.
CREATE FUNCTION credit._monitor_lock_waits_rows() RETURNS TABLE(waiters bigint, longest_wait_seconds numeric)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN QUERY SELECT * FROM credit_route.monitor_lock_waits_rows() px_row;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, NULL, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit._monitor_lock_waits_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit._monitor_lock_waits_rows() TO credit_auditor;
GRANT EXECUTE ON FUNCTION credit._monitor_lock_waits_rows() TO credit_monitor;

CREATE VIEW credit.monitor_lock_waits AS SELECT sum(waiters)::bigint AS waiters, max(longest_wait_seconds)::numeric AS longest_wait_seconds FROM credit._monitor_lock_waits_rows();
GRANT SELECT ON credit.monitor_lock_waits TO credit_auditor;
GRANT SELECT ON credit.monitor_lock_waits TO credit_monitor;

RESET ROLE;
CREATE FUNCTION credit_route.monitor_reconcile_rows() RETURNS TABLE(run_id bigint, started_at timestamp with time zone, finished_at timestamp with time zone, findings integer, findings_by_check jsonb, oldest_active_hold_at timestamp with time zone, oldest_active_hold_age interval)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON ALL;
    SELECT px_row.run_id, px_row.started_at, px_row.finished_at, px_row.findings, px_row.findings_by_check, px_row.oldest_active_hold_at, px_row.oldest_active_hold_age FROM credit.monitor_reconcile px_row;
$plproxy$;
ALTER FUNCTION credit_route.monitor_reconcile_rows() OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.monitor_reconcile_rows() FROM PUBLIC;
SET ROLE credit_owner;

-- The rows of credit.monitor_reconcile on every partition.
CREATE FUNCTION credit._monitor_reconcile_rows() RETURNS TABLE(run_id bigint, started_at timestamp with time zone, finished_at timestamp with time zone, findings integer, findings_by_check jsonb, oldest_active_hold_at timestamp with time zone, oldest_active_hold_age interval)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN QUERY SELECT * FROM credit_route.monitor_reconcile_rows() px_row;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, NULL, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit._monitor_reconcile_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit._monitor_reconcile_rows() TO credit_auditor;
GRANT EXECUTE ON FUNCTION credit._monitor_reconcile_rows() TO credit_monitor;

CREATE VIEW credit.monitor_reconcile AS SELECT max(run_id)::bigint AS run_id, min(started_at)::timestamp with time zone AS started_at, min(finished_at)::timestamp with time zone AS finished_at, sum(findings)::integer AS findings, credit._jsonb_counts_sum(findings_by_check)::jsonb AS findings_by_check, min(oldest_active_hold_at)::timestamp with time zone AS oldest_active_hold_at, max(oldest_active_hold_age)::interval AS oldest_active_hold_age FROM credit._monitor_reconcile_rows() HAVING count(*) = 4;
GRANT SELECT ON credit.monitor_reconcile TO credit_auditor;
GRANT SELECT ON credit.monitor_reconcile TO credit_monitor;
GRANT EXECUTE ON FUNCTION credit._jsonb_counts_sum(jsonb) TO credit_auditor;
GRANT EXECUTE ON FUNCTION credit._jsonb_counts_sum(jsonb) TO credit_monitor;

RESET ROLE;
CREATE FUNCTION credit_route.monitor_refusal_windows_rows() RETURNS TABLE(code text, last_5m bigint, last_1h bigint)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON ALL;
    SELECT px_row.code, px_row.last_5m, px_row.last_1h FROM credit.monitor_refusal_windows px_row;
$plproxy$;
ALTER FUNCTION credit_route.monitor_refusal_windows_rows() OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.monitor_refusal_windows_rows() FROM PUBLIC;
SET ROLE credit_owner;

-- The rows of credit.monitor_refusal_windows on every partition.
CREATE FUNCTION credit._monitor_refusal_windows_rows() RETURNS TABLE(code text, last_5m bigint, last_1h bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN QUERY SELECT * FROM credit_route.monitor_refusal_windows_rows() px_row;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, NULL, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit._monitor_refusal_windows_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit._monitor_refusal_windows_rows() TO credit_auditor;
GRANT EXECUTE ON FUNCTION credit._monitor_refusal_windows_rows() TO credit_monitor;

CREATE VIEW credit.monitor_refusal_windows AS SELECT code, sum(last_5m)::bigint AS last_5m, sum(last_1h)::bigint AS last_1h FROM credit._monitor_refusal_windows_rows() GROUP BY code;
GRANT SELECT ON credit.monitor_refusal_windows TO credit_auditor;
GRANT SELECT ON credit.monitor_refusal_windows TO credit_monitor;

RESET ROLE;
CREATE FUNCTION credit_route.monitor_refusals_rows() RETURNS TABLE(code text, refusals bigint, lines bigint, amount_refused numeric, last_at timestamp with time zone)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON ALL;
    SELECT px_row.code, px_row.refusals, px_row.lines, px_row.amount_refused, px_row.last_at FROM credit.monitor_refusals px_row;
$plproxy$;
ALTER FUNCTION credit_route.monitor_refusals_rows() OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.monitor_refusals_rows() FROM PUBLIC;
SET ROLE credit_owner;

-- The rows of credit.monitor_refusals on every partition.
CREATE FUNCTION credit._monitor_refusals_rows() RETURNS TABLE(code text, refusals bigint, lines bigint, amount_refused numeric, last_at timestamp with time zone)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN QUERY SELECT * FROM credit_route.monitor_refusals_rows() px_row;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, NULL, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit._monitor_refusals_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit._monitor_refusals_rows() TO credit_auditor;

CREATE VIEW credit.monitor_refusals AS SELECT code, sum(refusals)::bigint AS refusals, sum(lines)::bigint AS lines, sum(amount_refused)::numeric AS amount_refused, max(last_at)::timestamp with time zone AS last_at FROM credit._monitor_refusals_rows() GROUP BY code;
GRANT SELECT ON credit.monitor_refusals TO credit_auditor;

RESET ROLE;
CREATE FUNCTION credit_route.monitor_sweep_rows() RETURNS TABLE(holds_awaiting_sweep bigint, oldest_awaiting_sweep_seconds numeric)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON ALL;
    SELECT px_row.holds_awaiting_sweep, px_row.oldest_awaiting_sweep_seconds FROM credit.monitor_sweep px_row;
$plproxy$;
ALTER FUNCTION credit_route.monitor_sweep_rows() OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.monitor_sweep_rows() FROM PUBLIC;
SET ROLE credit_owner;

-- The rows of credit.monitor_sweep on every partition.
CREATE FUNCTION credit._monitor_sweep_rows() RETURNS TABLE(holds_awaiting_sweep bigint, oldest_awaiting_sweep_seconds numeric)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN QUERY SELECT * FROM credit_route.monitor_sweep_rows() px_row;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, NULL, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit._monitor_sweep_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit._monitor_sweep_rows() TO credit_auditor;
GRANT EXECUTE ON FUNCTION credit._monitor_sweep_rows() TO credit_monitor;

CREATE VIEW credit.monitor_sweep AS SELECT sum(holds_awaiting_sweep)::bigint AS holds_awaiting_sweep, max(oldest_awaiting_sweep_seconds)::numeric AS oldest_awaiting_sweep_seconds FROM credit._monitor_sweep_rows();
GRANT SELECT ON credit.monitor_sweep TO credit_auditor;
GRANT SELECT ON credit.monitor_sweep TO credit_monitor;

RESET ROLE;
CREATE FUNCTION credit_route.monitor_totals_rows() RETURNS TABLE(lines bigint, blocked_lines bigint, total_credit_limit numeric, total_reserved numeric, total_outstanding numeric, holds_awaiting_sweep bigint, oldest_awaiting_sweep timestamp with time zone, total_past_due numeric)
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON ALL;
    SELECT px_row.lines, px_row.blocked_lines, px_row.total_credit_limit, px_row.total_reserved, px_row.total_outstanding, px_row.holds_awaiting_sweep, px_row.oldest_awaiting_sweep, px_row.total_past_due FROM credit.monitor_totals px_row;
$plproxy$;
ALTER FUNCTION credit_route.monitor_totals_rows() OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.monitor_totals_rows() FROM PUBLIC;
SET ROLE credit_owner;

-- The rows of credit.monitor_totals on every partition.
CREATE FUNCTION credit._monitor_totals_rows() RETURNS TABLE(lines bigint, blocked_lines bigint, total_credit_limit numeric, total_reserved numeric, total_outstanding numeric, holds_awaiting_sweep bigint, oldest_awaiting_sweep timestamp with time zone, total_past_due numeric)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN QUERY SELECT * FROM credit_route.monitor_totals_rows() px_row;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, NULL, 4);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit._monitor_totals_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit._monitor_totals_rows() TO credit_auditor;

CREATE VIEW credit.monitor_totals AS SELECT sum(lines)::bigint AS lines, sum(blocked_lines)::bigint AS blocked_lines, sum(total_credit_limit)::numeric AS total_credit_limit, sum(total_reserved)::numeric AS total_reserved, sum(total_outstanding)::numeric AS total_outstanding, sum(holds_awaiting_sweep)::bigint AS holds_awaiting_sweep, min(oldest_awaiting_sweep)::timestamp with time zone AS oldest_awaiting_sweep, sum(total_past_due)::numeric AS total_past_due FROM credit._monitor_totals_rows();
GRANT SELECT ON credit.monitor_totals TO credit_auditor;

RESET ROLE;
