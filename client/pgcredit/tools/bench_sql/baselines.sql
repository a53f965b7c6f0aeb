-- What `pgcredit bench` compares reserve_credit with (BENCHMARKS.md, method),
-- created once in the bench's database after pgcredit's own migrations. The
-- workloads that call these are the scripts in workloads/.

-- (a), the physical limit, and the schema: bare.sql, run before this file.
-- (c) The minimal correct reservation: a hold row with its key, and one
-- conditional update of the line, in one statement (cte_spread).
CREATE TABLE bench.hold (line_id int NOT NULL, order_ref text NOT NULL, amount numeric NOT NULL,
                         PRIMARY KEY (line_id, order_ref));
-- (d) The same statement where this design has to put it: in a PL/pgSQL
-- function that is SECURITY DEFINER with a pinned search_path and a bounded
-- lock wait (SPEC), and nothing else (cte_fn_spread): the floor under
-- reserve_credit.
CREATE ROLE bench_owner NOLOGIN;
GRANT USAGE ON SCHEMA bench TO bench_owner;
CREATE FUNCTION bench.cte_reserve(p_line int, p_ref text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
BEGIN
    WITH h AS (INSERT INTO bench.hold (line_id, order_ref, amount) VALUES (p_line, p_ref, 1) RETURNING line_id)
    UPDATE bench.bare SET used = used + 1 WHERE id = (SELECT line_id FROM h) AND used + 1 <= lim;
    RETURN FOUND;
END $$;
-- Owned by a role that is not a superuser, as credit_owner is: privileges are checked.
GRANT SELECT, INSERT, UPDATE ON bench.hold, bench.bare TO bench_owner;
ALTER FUNCTION bench.cte_reserve(int, text) OWNER TO bench_owner;
-- (e) The same function over SPEC's data model, and still nothing else
-- (model_fn_spread): the hold is a row of credit.reservation (its key with
-- ON CONFLICT for replays, reservation_id from a sequence, the index that
-- list_reservations pages through), the line is found by (wholesaler_id,
-- retailer_id). What any reserve_credit costs before it checks anything.
CREATE FUNCTION bench.model_reserve(p_retailer text, p_ref text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_line bigint;
BEGIN
    -- Two statements, as reserve_credit does: the cheaper form here (BENCHMARKS.md).
    INSERT INTO credit.reservation AS r (line_id, order_ref, amount)
    SELECT x.id, p_ref, 1 FROM credit.line x WHERE x.wholesaler_id = 'bench' AND x.retailer_id = p_retailer
    ON CONFLICT ON CONSTRAINT reservation_pkey DO NOTHING RETURNING r.line_id INTO v_line;
    UPDATE credit.line x SET reserved = x.reserved + 1
     WHERE x.id = v_line AND x.reserved + 1 <= x.credit_limit - x.outstanding;
    RETURN FOUND;
END $$;
ALTER FUNCTION bench.model_reserve(text, text) OWNER TO credit_owner;
-- (b) The design of the source documents: lock the line, SUM its whole ledger,
-- insert an entry, commit.
CREATE TABLE bench.naive_line (id int PRIMARY KEY, lim numeric NOT NULL);
CREATE TABLE bench.naive_ledger (id bigserial PRIMARY KEY, line_id int NOT NULL REFERENCES bench.naive_line,
                                 amount numeric NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON bench.naive_ledger (line_id);
INSERT INTO bench.naive_line VALUES (1, 1e15), (2, 1e15);
CREATE FUNCTION bench.naive_reserve(p_line int, p_amount numeric) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_lim numeric;
    v_used numeric;
BEGIN
    SELECT lim INTO v_lim FROM bench.naive_line WHERE id = p_line FOR UPDATE;
    SELECT coalesce(sum(amount), 0) INTO v_used FROM bench.naive_ledger WHERE line_id = p_line;
    IF v_used + p_amount > v_lim THEN
        RETURN 'insufficient_credit';
    END IF;
    INSERT INTO bench.naive_ledger (line_id, amount) VALUES (p_line, p_amount);
    RETURN 'ok';
END $$;
