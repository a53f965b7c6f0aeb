"""Instructions per call of a statement, counted by callgrind, for one or
more sql/ trees side by side: the A/B method of BENCHMARKS.md, which repeats
to within 1% on a shared VM where timings move by 10%.

    python benchmarks/instructions.py SQL_DIR [SQL_DIR ...] [--calls N]

For each tree it builds a cluster (as the postgres user when run as root),
migrates it, opens the lines the cases need, stops the server, and runs a
single-user backend under callgrind twice: N and 3N executions of a prepared
statement. (3N - N) / 2N is what one call costs, without the one-off costs
(catalog caches, plan). Needs valgrind. Another release's tree comes from git:
    git archive 5a0f3c9 sql | tar -x -C /tmp/v10
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from pgcredit.tools import embedded
from pgcredit.migrate import migrate

SETUP = [
    "SELECT credit.open_line('b', 'plain', 1e15)",
    "SELECT credit.open_line('b', 'spread' || g, 1e15) FROM generate_series(0, 999) g",
    # A line with an overdue policy and an unpaid debit that is not yet late:
    # the fast path must stay the fast path.
    "SELECT credit.open_line('b', 'policy', 1e15)",
    "SELECT credit.reserve_credit('b', 'policy', 'sold', 10)",
    "SELECT credit.convert_to_debit('b', 'policy', 'sold')",
]
POLICY = "SELECT credit.set_overdue_policy('b', 'policy', 0)"
# A line under a temporary limit: the fast path must stay the fast path there too.
TEMP = ["SELECT credit.open_line('b', 'temp', 1e14)",
        "SELECT credit.set_credit_limit('b', 'temp', 1e15, 'season', now() + interval '1 day')"]

CASES = {
    "reserve_credit, one line": ("PREPARE s(text) AS SELECT code FROM credit.reserve_credit('b', 'plain', $1, 1)",
                                 "EXECUTE s('{tag}{i}')"),
    "reserve_credit, 1,000 lines": (
        "PREPARE s(text, text) AS SELECT code FROM credit.reserve_credit('b', $1, $2, 1)",
        "EXECUTE s('spread{mod}', '{tag}{i}')"),
    "reserve_credit, overdue policy, nothing late": (
        "PREPARE s(text) AS SELECT code FROM credit.reserve_credit('b', 'policy', $1, 1)", "EXECUTE s('{tag}{i}')"),
    "reserve_credit, temporary limit": (
        "PREPARE s(text) AS SELECT code FROM credit.reserve_credit('b', 'temp', $1, 1)", "EXECUTE s('{tag}{i}')"),
    "convert_to_debit, 1,000 lines": (
        "PREPARE s(text, text) AS SELECT code FROM credit.convert_to_debit('b', $1, $2)",
        "EXECUTE s('spread{mod}', '{tag}{i}')"),
    "record_payment, 1,000 lines": (
        "PREPARE s(text, text) AS SELECT code FROM credit.record_payment('b', $1, $2, 1)",
        "EXECUTE s('spread{mod}', '{tag}{i}')"),
    "reserve_credit_batch of 100, one line": (
        "PREPARE s(text) AS SELECT count(*) FROM credit.reserve_credit_batch(array_fill('b'::text, ARRAY[100]),"
        " array_fill('plain'::text, ARRAY[100]), ARRAY(SELECT $1 || '.' || g FROM generate_series(1, 100) g),"
        " array_fill(1::numeric, ARRAY[100]))", "EXECUTE s('{tag}{i}')"),
    "record_payment_batch of 100, 1,000 lines": (
        "PREPARE s(text, int) AS SELECT count(*) FROM credit.record_payment_batch(array_fill('b'::text, ARRAY[100]),"
        " ARRAY(SELECT 'spread' || (($2 * 7 + g * 13) % 1000) FROM generate_series(1, 100) g),"
        " ARRAY(SELECT $1 || '.' || g FROM generate_series(1, 100) g), array_fill(1::numeric, ARRAY[100]))",
        "EXECUTE s('{tag}{i}', {i})"),
    "get_available": ("PREPARE s AS SELECT * FROM credit.get_available('b', 'plain')", "EXECUTE s"),
    # v1.2: a raise of a hold, a shipment (part of a hold), a remittance naming ten invoices.
    "amend_reservation, a raise, 1,000 lines": (
        "PREPARE s(text, text, text) AS SELECT code FROM credit.amend_reservation('b', $1, $2, 2, $3)",
        "EXECUTE s('spread{mod}', '{tag}{i}', '{tag}{i}.a')"),
    "convert_to_debit, a shipment, 1,000 lines": (
        "PREPARE s(text, text, text) AS SELECT code FROM credit.convert_to_debit('b', $1, $2, 1, NULL, $3)",
        "EXECUTE s('spread{mod}', '{tag}{i}', '{tag}{i}.s')"),
    "record_payment, 10 applies_to, 100 lines": (
        "PREPARE s(text, text, text[]) AS SELECT code FROM credit.record_payment('b', $1, $2, 10, $3)",
        "EXECUTE s('remit{mod100}', '{tag}{i}', '{{{refs}}}')"),
    # The floor under any remittance that keeps the data model (REMIT_FLOOR): the same call's rows, nothing else.
    "remittance floor, 10 invoices, 100 lines": (
        "PREPARE s(text, text, text[]) AS SELECT credit.bench_remit_floor($1, $2, 10, $3)",
        "EXECUTE s('remit{mod100}', '{tag}{i}', '{{{refs}}}')"),
    "bare UPDATE": ("PREPARE s AS UPDATE bare SET used = used + 1 WHERE id = 0 AND used + 1 <= lim", "EXECUTE s"),
}
REMITTANCE_CASES = ("record_payment, 10 applies_to, 100 lines", "remittance floor, 10 invoices, 100 lines")


# Run before a case's calls, the same in both of its runs (so it cancels out): what each call needs.
CASE_SETUP = {
    # A hold for each call to convert, as many as the larger run makes calls, each
    # in a transaction of its own (as orders come).
    "convert_to_debit, 1,000 lines": "SELECT credit.reserve_credit('b', 'spread{mod}', '{tag}{k}', 1)",
    "amend_reservation, a raise, 1,000 lines": "SELECT credit.reserve_credit('b', 'spread{mod}', '{tag}{k}', 1)",
    "convert_to_debit, a shipment, 1,000 lines": "SELECT credit.reserve_credit('b', 'spread{mod}', '{tag}{k}', 2)",
}
# What a case needs of the tree (another release's may not have it), as a query answering true.
CASE_NEEDS = {
    "amend_reservation, a raise, 1,000 lines": "SELECT to_regproc('credit.amend_reservation') IS NOT NULL",
    "convert_to_debit, a shipment, 1,000 lines":
        "SELECT to_regprocedure('credit.convert_to_debit(text, text, text, numeric, date, text)') IS NOT NULL",
    "record_payment, 10 applies_to, 100 lines":
        "SELECT to_regprocedure('credit.record_payment(text, text, text, numeric, text[])') IS NOT NULL",
}
# The data model's floor under a remittance that pays its ten invoices in full
# (the case's invoices are 1 each, the payment 10): a PL/pgSQL function as
# SPEC's (SECURITY DEFINER, pinned search_path, bounded lock wait), owned by
# credit_owner, that writes exactly the rows the real call writes and checks
# nothing: the line (locked, outstanding, the oldest unpaid due date once the
# named items are gone), the CREDIT (its key replays by ON CONFLICT), the ten
# open items deleted, their ten settlements, one event. What any
# record_payment naming ten invoices costs before it decides anything.
REMIT_FLOOR = """
CREATE FUNCTION credit.bench_remit_floor(p_retailer text, p_ref text, p_amount numeric, p_refs text[]) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_line bigint;
    v_entry bigint;
    v_w text;
    v_available numeric;
BEGIN
    UPDATE credit.line l
       SET outstanding = l.outstanding - p_amount,
           oldest_unpaid_due = (SELECT min(o.due_date) FROM credit.open_item o
                                 WHERE o.line_id = l.id AND o.entry_id <> ALL (
                                       SELECT e.id FROM credit.ledger_entry e
                                        WHERE e.line_id = l.id AND e.entry_type = 'DEBIT' AND e.ref = ANY (p_refs)))
     WHERE l.wholesaler_id = 'b' AND l.retailer_id = p_retailer
    RETURNING l.id, l.wholesaler_id, l.credit_limit - l.reserved - l.outstanding INTO v_line, v_w, v_available;
    INSERT INTO credit.ledger_entry AS e (line_id, entry_type, amount, ref, applies_to)
    VALUES (v_line, 'CREDIT', p_amount, p_ref, p_refs)
    ON CONFLICT DO NOTHING RETURNING e.id INTO v_entry;
    WITH paid AS (
        DELETE FROM credit.open_item o USING credit.ledger_entry e
         WHERE e.line_id = v_line AND e.entry_type = 'DEBIT' AND e.ref = ANY (p_refs)
           AND o.line_id = v_line AND o.due_date = e.due_date AND o.entry_id = e.id
        RETURNING o.entry_id, o.unpaid)
    INSERT INTO credit.settlement (line_id, item_id, amount) SELECT v_line, p.entry_id, p.unpaid FROM paid p;
    INSERT INTO %(events)s (wholesaler_id, retailer_id, kind, ref, amount, available, data)
    VALUES (v_w, p_retailer, 'payment_recorded', p_ref, p_amount, v_available, jsonb_build_object('ledger_entry_id', v_entry));
    RETURN 'ok';
END $$;
ALTER FUNCTION credit.bench_remit_floor(text, text, numeric, text[]) OWNER TO credit_owner;
"""
# The remittance's invoices: ten DEBITs of 1 for each call of either run (refs d<run><i>.1 .. .10 on
# line remit<i mod 100>), booked before the runs, so that each payment of 10 settles its ten in full.
REMIT_SETUP = """
DO $$
DECLARE
    run text;
BEGIN
    FOR i IN 0 .. 99 LOOP
        PERFORM credit.open_line('b', 'remit' || i, 1e15);
    END LOOP;
    FOR i IN 0 .. %(most)s - 1 LOOP
        FOREACH run IN ARRAY ARRAY['a', 'b'] LOOP
            FOR j IN 1 .. 10 LOOP
                PERFORM credit.reserve_credit('b', 'remit' || i %% 100, 'd' || run || i || '.' || j, 1);
                PERFORM credit.convert_to_debit('b', 'remit' || i %% 100, 'd' || run || i || '.' || j);
            END LOOP;
        END LOOP;
    END LOOP;
END $$"""
BATCH_CASES = ("reserve_credit_batch of 100, one line", "record_payment_batch of 100, 1,000 lines")


def instructions(server: embedded.Server, work: Path, prepare: str, execute: str, n: int, tag: str,
                 setup: str | None = None, most: int = 0) -> int:
    lines = [setup.format(tag=tag, k=k, mod=k % 1000) for k in range(most)] if setup else []
    lines.append(prepare)
    run = tag[-1]
    lines += [execute.format(i=i, mod=i % 1000, mod100=i % 100, tag=tag,
                             refs=",".join(f"d{run}{i}.{j}" for j in range(1, 11))) for i in range(n)]
    script = work / f"{tag}.sql"
    script.write_text("\n".join(lines) + "\n")
    out = work / f"callgrind.{tag}"
    embedded.give_to_server_user(work)
    cmd = embedded.as_server_user(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                   str(server.bin / "postgres"), "--single", "-D", str(server.data),
                                   "-c", "fsync=off", "bench"])
    with open(script) as stdin:
        done = subprocess.run(cmd, stdin=stdin, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    # A single-user backend reports a failed statement on stderr, and goes on.
    for output in (done.stdout, done.stderr):
        if "ERROR" in output:
            raise RuntimeError(output[output.index("ERROR"):][:2000])
    summary = re.search(r"^summary: (\d+)", out.read_text(), re.M)
    return int(summary.group(1))


def measure(sql: Path, calls: int, cases: list[str]) -> dict[str, float | None]:
    work = Path(tempfile.mkdtemp(prefix="pgcredit-instr-"))
    embedded.give_to_server_user(work)
    server = embedded.Server(work / "pg")
    server.init()
    server.start("fsync=off")
    try:
        dsn = server.ensure_database("bench")
        migrate(dsn, sql)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in SETUP:
                conn.execute(statement)
            has_policy = conn.execute("SELECT to_regproc('credit.set_overdue_policy') IS NOT NULL").fetchone()[0]
            if has_policy:
                conn.execute(POLICY)
            for statement in TEMP:
                conn.execute(statement)
            conn.execute("CREATE TABLE bare (id int PRIMARY KEY, used numeric NOT NULL, lim numeric NOT NULL)")
            conn.execute("INSERT INTO bare VALUES (0, 0, 1e15)")
            present = {name: conn.execute(CASE_NEEDS.get(name, "SELECT true")).fetchone()[0] for name in cases}
            # Whenever the case is asked, whether or not this tree has it: the invoices
            # are in the tables (and their statistics) every other case runs on.
            if all(name in cases for name in REMITTANCE_CASES):
                raise SystemExit("the remittance and its floor pay the same invoices: measure them in runs of their own")
            if any(name in REMITTANCE_CASES for name in cases):
                conn.execute(REMIT_SETUP % {"most": 3 * calls})
            if "remittance floor, 10 invoices, 100 lines" in cases:
                events = "credit.event_inbox" if conn.execute(
                    "SELECT to_regclass('credit.event_inbox') IS NOT NULL").fetchone()[0] else "credit.event"
                conn.execute(REMIT_FLOOR % {"events": events})
            conn.execute("VACUUM ANALYZE")
    finally:
        server.stop()
    result: dict[str, float | None] = {}
    for k, name in enumerate(cases):
        if not present[name]:
            result[name] = None
            continue
        prepare, execute = CASES[name]
        # A batch is 100 calls in one: fewer of them, past the plan cache's first custom plans.
        n = max(calls // 100, 20) if name in BATCH_CASES else calls
        setup = CASE_SETUP.get(name)
        small = instructions(server, work, prepare, execute, n, f"c{k}a", setup, 3 * n)
        large = instructions(server, work, prepare, execute, 3 * n, f"c{k}b", setup, 3 * n)
        result[name] = (large - small) / (2 * n)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sql", nargs="+", type=Path, help="sql/ directories (migrations + functions)")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--case", action="append", choices=list(CASES), help="default: every case")
    args = parser.parse_args()
    cases = args.case or list(CASES)
    table = {str(s): measure(s, args.calls, cases) for s in args.sql}
    print("| case | " + " | ".join(table) + " |")
    print("|---|" + "---|" * len(table))
    first = next(iter(table.values()))
    for name in cases:
        cells = ["n/a" if t[name] is None else f"{t[name]:,.0f}" + (
                     f" ({t[name] / first[name] - 1:+.1%})" if t is not first and first[name] else "")
                 for t in table.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
