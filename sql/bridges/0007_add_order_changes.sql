-- A bridge: run by migrate before migration 0007, in a transaction of its
-- own, on a database that already has the schema (client/pgcredit/migrate.py).
--
-- v1.1's convert_to_debit_batch reads convert_to_debit's rows as `s.*`. A
-- call of it still running when v1.2's reload commits plans that statement
-- anew and finds v1.2's convert_to_debit, whose result gained a column:
-- "structure of query does not match function result type", and the whole
-- batch fails. So the old batch first gets a body that names the columns it
-- returns, which both releases' convert_to_debit have; migrate then waits
-- until every transaction begun before this one commits has ended, so no
-- call is left running the old body. The reload drops this function (v1.2
-- changed its signature); calls already running it finish as v1.1 would.
SET ROLE credit_owner;

DO $bridge$
BEGIN
    IF to_regprocedure('credit.convert_to_debit_batch(text[], text[], text[], numeric[])') IS NULL THEN
        RETURN;
    END IF;
    EXECUTE $def$
CREATE OR REPLACE FUNCTION credit.convert_to_debit_batch(
    wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[] DEFAULT NULL)
RETURNS TABLE (item integer, code text, reservation_id bigint, status text, ledger_entry_id bigint,
               debited_amount numeric, released_amount numeric, due_date date, available numeric,
               replayed boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_i integer;
    v_w text;
    v_r text;
    v_o text;
    v_a numeric;
BEGIN
    IF current_setting('credit.lock_timeout', true) <> '' THEN
        PERFORM credit._apply_lock_timeout();
    END IF;
    PERFORM credit._convert_to_debit_batch_check(wholesaler_ids, retailer_ids, order_refs, amounts);
    PERFORM credit._lock_lines(credit._line_ids(wholesaler_ids, retailer_ids));
    FOR v_i, v_w, v_r, v_o, v_a IN
        SELECT t.i::integer, t.w, t.r, t.o, t.a
          FROM unnest(wholesaler_ids, retailer_ids, order_refs, amounts) WITH ORDINALITY AS t(w, r, o, a, i)
         ORDER BY t.i
    LOOP
        RETURN QUERY
        SELECT v_i, s.code, s.reservation_id, s.status, s.ledger_entry_id, s.debited_amount,
               s.released_amount, s.due_date, s.available, s.replayed
          FROM credit.convert_to_debit(v_w, v_r, v_o, v_a) AS s;
    END LOOP;
END
$$
$def$;
END
$bridge$;

RESET ROLE;
