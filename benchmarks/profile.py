"""Where a workload's time goes, per call: what BENCHMARKS.md's profile tables
were measured with (not part of `pgcredit bench`).

    .venv/bin/python benchmarks/profile.py wal [--config tuned|default] [--clients 32] [--seconds 5]
    .venv/bin/python benchmarks/profile.py instructions [--calls 500]
    .venv/bin/python benchmarks/profile.py events SQL_DIR [SQL_DIR ...] [--calls 300] [--page 100]

wal: on a cluster of its own, set up like `pgcredit bench`'s (and preloaded
with --preload holds, so that indexes have the size they reach in a bench
run), each workload runs after a CHECKPOINT, as in the bench; per call it
reports WAL records, bytes and full-page images (pg_stat_wal), the WAL by
record type (pg_waldump --stats), context switches (/proc/stat), the
share of samples of pg_stat_activity in which a backend was waiting, by wait
event, and the share running.

instructions: callgrind counts of a single-user backend running N and 3N
calls; the difference divided by 2N is one call's cost without start-up
(catalog loading, plan caching). Unlike timings on a shared machine these
repeat to within about 1%.

events: what the event feed costs, for each sql/ tree given (one without
the feed, e.g. main's before it: git archive REV sql | tar -x -C DIR, and
this one): reserve_credit over 1,000 lines, its instructions per call
(callgrind, as above) and the WAL it writes per call; and what a reader
following the feed costs, per event, in instructions and WAL: polls of
events_after every --page reservations, each reading from the cursor the
last one left (kept in a table of the script's own) up to 1,000 events,
against the same reservations without them (3N against N calls again, so
that compiling and planning the first poll is not counted). A poll does
what the tree's events_after does: on a tree with the feed's mover, move
the events into the feed and read them; on one with the horizon, advance it
and read them. WAL is pg_current_wal_insert_lsn's advance on a server of
its own (fsync off: WAL bytes do not depend on it), after a warm-up, with
no CHECKPOINT in the measured stretch: the steady state, without full-page
images. Neither depends on what else the machine does.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import psycopg

from pgcredit import CreditClient
from pgcredit.tools import embedded
from pgcredit.tools.bench import BASELINE_SQL, SCRIPTS, SETTINGS, Bench
from pgcredit.migrate import migrate

WORKLOADS = ["bare_spread", "cte_spread", "reserve_spread"]


def prepare(server: embedded.Server, dsn: str, preload: int) -> None:
    migrate(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(BASELINE_SQL)
    client = CreditClient(dsn)
    for line in ["hot", *[f"s{i}" for i in range(1000)]]:
        client.open_line("bench", line, Decimal(10) ** 15)
    client.close()
    if preload:
        # Released holds (and the baseline's hold rows) spread over the lines,
        # as earlier runs of a bench leave them: index size shapes FPIs.
        with psycopg.connect(dsn, autocommit=True) as conn:
            for start in range(0, preload, 200_000):
                end = min(start + 200_000, preload)
                conn.execute("""
                    INSERT INTO credit.reservation (line_id, order_ref, amount, status, released_at, released_amount)
                    SELECT l.id, 'pre.' || g, 1, 'released', now(), 1
                      FROM generate_series(%s, %s - 1) g
                      JOIN credit.line l ON l.wholesaler_id = 'bench' AND l.retailer_id = 's' || (g %% 1000)""",
                             [start, end])
                conn.execute("INSERT INTO bench.hold SELECT g %% 1000, 'pre.' || g, 1 FROM generate_series(%s, %s - 1) g",
                             [start, end])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # as `pgcredit bench` does before its runs


class Sampler(threading.Thread):
    """pg_stat_activity every 10 ms: what the workload's backends are doing."""

    def __init__(self, dsn: str):
        super().__init__(daemon=True)
        self.dsn, self.stop, self.counts = dsn, threading.Event(), collections.Counter()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                for state, kind, event in conn.execute(
                        "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                        " WHERE application_name = 'pgbench' AND pid <> pg_backend_pid()"):
                    if state == "idle" or (kind == "Client" and event == "ClientRead"):
                        self.counts["idle (waiting for pgbench)"] += 1
                    elif kind:
                        self.counts[f"{kind}:{event}"] += 1
                    else:
                        self.counts["running"] += 1
                time.sleep(0.01)


def context_switches() -> int:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("ctxt "):
            return int(line.split()[1])
    return 0


def waldump_stats(server: embedded.Server, start: str, end: str) -> list[str]:
    done = subprocess.run(embedded.as_server_user(
        [str(server.bin / "pg_waldump"), "--stats=record", "-p", str(server.data / "pg_wal"), "-s", start, "-e", end]),
        capture_output=True, text=True)
    return [line for line in done.stdout.splitlines() if line.strip()]


def fpi_by_relation(server: embedded.Server, dsn: str, start: str, end: str) -> list[tuple[str, int]]:
    """Full-page images in the WAL between two LSNs, by the relation they image."""
    done = subprocess.run(embedded.as_server_user(
        [str(server.bin / "pg_waldump"), "-p", str(server.data / "pg_wal"), "-s", start, "-e", end]),
        capture_output=True, text=True)
    counts = collections.Counter(m.group(1) for m in re.finditer(r"rel \d+/\d+/(\d+) (?:fork \w+ )?blk \d+ FPW",
                                                                  done.stdout))
    with psycopg.connect(dsn, autocommit=True) as conn:
        names = dict(conn.execute("SELECT pg_relation_filenode(oid)::text, oid::regclass::text FROM pg_class"
                                  " WHERE pg_relation_filenode(oid) IS NOT NULL").fetchall())
    return [(names.get(node, node), n) for node, n in counts.most_common(6)]


def wal(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="pgcredit-profile-"))
    settings = SETTINGS if args.config == "tuned" else []
    try:
        with embedded.throwaway(settings=tuple(settings)) as server:
            dsn = server.ensure_database("bench")
            prepare(server, dsn, args.preload)
            protocol = "prepared"
            if args.config == "default":
                port = embedded.free_port()
                server.stop()
                server.start("listen_addresses=127.0.0.1", f"port={port}")
                dsn = psycopg.conninfo.make_conninfo(host="127.0.0.1", port=port, user="postgres", dbname="bench")
                protocol = "simple"
            b = Bench(server, args.seconds, work)
            b.use(args.config, dsn, protocol)
            b.total = len(args.workloads) * args.rounds * (2 if args.warmup else 1)
            for _ in range(args.rounds):
                for name in args.workloads:
                    b.checkpoint = False
                    with psycopg.connect(dsn, autocommit=True) as conn:
                        conn.execute("CHECKPOINT")
                    if args.warmup:  # pages this workload touches are imaged before the measured run
                        b.pgbench(f"{name} (warm-up)", SCRIPTS[name], args.clients, args.warmup)
                    with psycopg.connect(dsn, autocommit=True) as conn:
                        conn.execute("SELECT pg_stat_reset_shared('wal')")
                        lsn0 = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
                    sampler = Sampler(dsn)
                    sampler.start()
                    cs0 = context_switches()
                    b.pgbench(name, SCRIPTS[name], args.clients)
                    cs1 = context_switches()
                    sampler.stop.set()
                    sampler.join()
                    with psycopg.connect(dsn, autocommit=True) as conn:
                        lsn1 = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
                        records, fpi, nbytes = conn.execute(
                            "SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal").fetchone()
                    tps = b.rounds[(name, args.clients, args.config)][-1][0]  # this round, not the median so far
                    calls = tps * args.seconds
                    total = sum(sampler.counts.values()) or 1
                    print(f"\n## {name} ({args.config}, {args.clients} clients): {tps:,.0f} tps")
                    print(f"per call: {records / calls:.2f} WAL records, {int(nbytes) / calls:,.0f} WAL bytes, "
                          f"{fpi / calls:.3f} full-page images, {(cs1 - cs0) / calls:.1f} context switches (machine)")
                    print("backend samples: " + ", ".join(
                        f"{k} {100 * v / total:.0f}%" for k, v in sampler.counts.most_common(8)))
                    print("full-page images by relation: " + ", ".join(
                        f"{rel} {n}" for rel, n in fpi_by_relation(server, dsn, lsn0, lsn1)))
                    for line in waldump_stats(server, lsn0, lsn1):
                        if re.match(r"\s*(Type|----|Total|Heap/|Heap2/|Btree/|Transaction/|XLOG/|Sequence/)", line):
                            print("    " + line)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- instructions ------------------------------------------------------------------------

STATEMENTS = {
    # name: (literal SQL for the simple protocol, prepared SQL, parameter types, arguments)
    "bare_spread": ("UPDATE bench.bare SET used = used + 1 WHERE id = {l} AND used + 1 <= lim",
                    "UPDATE bench.bare SET used = used + 1 WHERE id = $1 AND used + 1 <= lim", "int", "{l}"),
    "cte_spread": ("WITH h AS (INSERT INTO bench.hold (line_id, order_ref, amount) VALUES ({l}, '7' || '.' || {k}, 1)"
                   " RETURNING line_id) UPDATE bench.bare SET used = used + 1 WHERE id = (SELECT line_id FROM h)"
                   " AND used + 1 <= lim",
                   "WITH h AS (INSERT INTO bench.hold (line_id, order_ref, amount) VALUES ($1, '7' || '.' || $2, 1)"
                   " RETURNING line_id) UPDATE bench.bare SET used = used + 1 WHERE id = (SELECT line_id FROM h)"
                   " AND used + 1 <= lim", "int, int", "{l}, {k}"),
    "cte_fn_spread": ("SELECT bench.cte_reserve({l}, '7' || '.' || {k})",
                      "SELECT bench.cte_reserve($1, '7' || '.' || $2)", "int, int", "{l}, {k}"),
    "model_fn_spread": ("SELECT bench.model_reserve('s' || {l}, 'm7' || '.' || {k})",
                        "SELECT bench.model_reserve('s' || $1, 'm7' || '.' || $2)", "int, int", "{l}, {k}"),
    "reserve_spread": ("SELECT code FROM credit.reserve_credit('bench', 's' || {l}, '7' || '.' || {k}, 1)",
                       "SELECT code FROM credit.reserve_credit('bench', 's' || $1, '7' || '.' || $2, 1)",
                       "int, int", "{l}, {k}"),
    "payment_spread": ("SELECT code FROM credit.record_payment('bench', 's' || {l}, 'q7.' || {k}, 1)",
                       "SELECT code FROM credit.record_payment('bench', 's' || $1, 'q7.' || $2, 1)",
                       "int, int", "{l}, {k}"),
    "reserve_batch_hot": (
        "SELECT count(*) FROM credit.reserve_credit_batch(array_fill('bench'::text, ARRAY[100]),"
        " array_fill('hot'::text, ARRAY[100]), ARRAY(SELECT 'b7.' || {k} || '.' || g FROM generate_series(1, 100) g),"
        " array_fill(1::numeric, ARRAY[100]))",
        "SELECT count(*) FROM credit.reserve_credit_batch(array_fill('bench'::text, ARRAY[100]),"
        " array_fill('hot'::text, ARRAY[100]), ARRAY(SELECT 'b7.' || $1 || '.' || g FROM generate_series(1, 100) g),"
        " array_fill(1::numeric, ARRAY[100]))", "int", "{k}"),
    "payment_batch": (
        "SELECT count(*) FROM credit.record_payment_batch(array_fill('bench'::text, ARRAY[100]),"
        " ARRAY(SELECT 's' || (({k} * 7 + g * 13) % 1000) FROM generate_series(1, 100) g),"
        " ARRAY(SELECT 'p7.' || {k} || '.' || g FROM generate_series(1, 100) g), array_fill(1::numeric, ARRAY[100]))",
        "SELECT count(*) FROM credit.record_payment_batch(array_fill('bench'::text, ARRAY[100]),"
        " ARRAY(SELECT 's' || (($1 * 7 + g * 13) % 1000) FROM generate_series(1, 100) g),"
        " ARRAY(SELECT 'p7.' || $1 || '.' || g FROM generate_series(1, 100) g), array_fill(1::numeric, ARRAY[100]))",
        "int", "{k}"),
}


def script(name: str, calls: int, simple: bool) -> str:
    literal, prepared, types, arguments = STATEMENTS[name]
    lines = [] if simple else [f"PREPARE p({types}) AS {prepared}"]
    for k in range(calls):
        values = dict(l=(k * 7919) % 1000, k=k)
        lines.append(literal.format(**values) if simple else f"EXECUTE p({arguments.format(**values)})")
    return "\n".join(lines) + "\n"


def callgrind(server: embedded.Server, work: Path, name: str, calls: int, simple: bool) -> int:
    """Instructions of a single-user backend running `calls` calls, on a fresh copy of the data."""
    data = work / f"data-{name}-{calls}"
    shutil.copytree(server.data, data, symlinks=True)
    embedded.give_to_server_user(work)
    out = work / f"cg-{name}-{calls}.out"
    done = subprocess.run(embedded.as_server_user(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(server.bin / "postgres"), "--single",
         "-D", str(data), "-c", "fsync=off", "bench"]),
        input=script(name, calls, simple), capture_output=True, text=True)
    shutil.rmtree(data)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if not found:
        raise RuntimeError(done.stderr[-2000:])
    return int(found.group(1))


def instructions(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="pgcredit-profile-"))
    try:
        with embedded.throwaway(settings=("fsync=off",)) as server:
            dsn = server.ensure_database("bench")
            prepare(server, dsn, 0)
            server.stop()
            for simple in (False, True):
                for name in args.workloads:
                    # A batch is 100 calls in one: 20 of them, past the plan cache's first custom plans.
                    n = max(args.calls // 100, 20) if "batch" in name else args.calls
                    a, c = callgrind(server, work, name, n, simple), callgrind(server, work, name, 3 * n, simple)
                    print(f"{name:<20} {'simple' if simple else 'prepared':<9} "
                          f"{(c - a) / (2 * n):>12,.0f} instructions per call")
            server.start("fsync=off")  # throwaway() stops it
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- events ---------------------------------------------------------------------------

EVENT_SETUP = "SELECT credit.open_line('b', 'spread' || g, 1e15) FROM generate_series(0, 999) g"
RESERVE = "SELECT code FROM credit.reserve_credit('b', 'spread' || {l}, '{tag}' || '.' || {k}, 1)"
CURSOR = "CREATE TABLE public.feed_cursor AS SELECT 0::bigint AS v"
POLL = ("WITH r AS (SELECT max(e.event_id) AS m FROM credit.events_after((SELECT c.v FROM public.feed_cursor c), 1000) e) "
        "UPDATE public.feed_cursor c SET v = coalesce(r.m, c.v) FROM r")


def _events_script(n: int, page: int, tag: str, poll: bool) -> str:
    lines = []
    for k in range(n):
        lines.append(RESERVE.format(l=(k * 7919) % 1000, k=k, tag=tag) + ";")
        if poll and k % page == page - 1:
            lines.append(POLL + ";")
    return "\n".join(lines) + "\n"


def _callgrind_script(server: embedded.Server, work: Path, script: str, tag: str) -> int:
    data = work / f"data-{tag}"
    shutil.copytree(server.data, data, symlinks=True)
    embedded.give_to_server_user(work)
    out = work / f"cg-{tag}.out"
    done = subprocess.run(embedded.as_server_user(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(server.bin / "postgres"), "--single",
         "-D", str(data), "-c", "fsync=off", "bench"]), input=script, capture_output=True, text=True)
    shutil.rmtree(data)
    if "ERROR" in done.stdout:
        raise RuntimeError(done.stdout[-2000:])
    found = re.search(r"Collected : (\d+)", done.stderr)
    if not found:
        raise RuntimeError(done.stderr[-2000:])
    return int(found.group(1))


def events(args) -> None:
    rows = []
    for sql in args.sql:
        work = Path(tempfile.mkdtemp(prefix="pgcredit-profile-"))
        try:
            with embedded.throwaway(settings=("fsync=off",)) as server:
                dsn = server.ensure_database("bench")
                migrate(dsn, sql)
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(EVENT_SETUP)
                    feed = conn.execute("SELECT to_regproc('credit.events_after') IS NOT NULL").fetchone()[0]
                    if feed:
                        conn.execute(CURSOR)
                        conn.execute(POLL)
                    conn.execute("VACUUM ANALYZE")

                    def wal(n: int, tag: str, poll: bool) -> float:
                        for statement in _events_script(n, args.page, f"{tag}w", poll).splitlines():
                            conn.execute(statement)  # warm-up: every page touched once, no image measured
                        lsn = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
                        for statement in _events_script(n, args.page, tag, poll).splitlines():
                            conn.execute(statement)
                        return conn.execute("SELECT pg_current_wal_insert_lsn() - %s::pg_lsn", [lsn]).fetchone()[0] / n

                    wal_reserve = float(wal(2000, "plain", False))
                    wal_read = float(wal(2000, "read", True)) - wal_reserve if feed else None
                    conn.execute("CHECKPOINT")
                server.stop()
                n = args.calls
                plain = (_callgrind_script(server, work, _events_script(3 * n, args.page, "c", False), "c3")
                         - _callgrind_script(server, work, _events_script(n, args.page, "c", False), "c1"))
                reserve = plain / (2 * n)
                read = None
                if feed:
                    # 3N against N calls, as for reserve_credit: the first poll's compiling and
                    # planning falls out with the rest of start-up.
                    polled = (_callgrind_script(server, work, _events_script(3 * n, args.page, "c", True), "p3")
                              - _callgrind_script(server, work, _events_script(n, args.page, "c", True), "p1"))
                    read = (polled - plain) / (2 * n)
                server.start("fsync=off")  # throwaway() stops it
        finally:
            shutil.rmtree(work, ignore_errors=True)
        rows.append((str(sql), reserve, wal_reserve, read, wal_read))
    print(f"| sql tree | reserve_credit, instructions per call | WAL bytes per call | a reader's polls (one per "
          f"{args.page} events), instructions per event | WAL bytes per event |")
    print("|---|---|---|---|---|")
    for sql, reserve, wal_reserve, read, wal_read in rows:
        print(f"| {sql} | {reserve:,.0f} | {wal_reserve:,.0f} | "
              + (f"{read:,.0f} | {wal_read:,.0f} |" if read is not None else "(no feed) | |"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    w = sub.add_parser("wal")
    w.add_argument("--config", choices=["tuned", "default"], default="tuned")
    w.add_argument("--clients", type=int, default=32)
    w.add_argument("--seconds", type=int, default=5)
    w.add_argument("--rounds", type=int, default=1)
    w.add_argument("--warmup", type=int, default=0, help="seconds of the workload, unmeasured, after the CHECKPOINT")
    w.add_argument("--preload", type=int, default=1_000_000)
    w.add_argument("--workloads", type=lambda s: s.split(","), default=WORKLOADS)
    w.set_defaults(func=wal)
    i = sub.add_parser("instructions")
    i.add_argument("--calls", type=int, default=500)
    i.add_argument("--workloads", type=lambda s: s.split(","), default=WORKLOADS)
    i.set_defaults(func=instructions)
    e = sub.add_parser("events")
    e.add_argument("sql", nargs="+", type=Path, help="sql/ directories (migrations + functions)")
    e.add_argument("--calls", type=int, default=300)
    e.add_argument("--page", type=int, default=100, help="reservations between two polls")
    e.set_defaults(func=events)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
