"""`pgcredit bench`: pgcredit against the physical limit, the minimal correct
reservation and the design it replaces, in one run, on a cluster of its own
with fsync, synchronous_commit and full_page_writes on.

Two server configurations, one after the other on the same cluster:

- tuned: the settings a DBA would give a production server of this size
  (SETTINGS), pgbench over a Unix socket with prepared statements;
- default: the same cluster restarted with every setting at PostgreSQL's
  default (postgresql.conf as initdb wrote it), pgbench over TCP with the
  simple query protocol, as psql, many drivers and other languages call it.

SQL workloads are driven by pgbench; latency percentiles come from its
per-transaction logs. The Python client is driven by threads.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psycopg

from . import embedded
from ..client import CreditClient
from ..migrate import migrate

# What a DBA would set on a production server with this much memory: a larger
# buffer cache, and checkpoints spread out (fewer full-page images). fsync,
# synchronous_commit and full_page_writes keep their defaults: on.
SETTINGS = ["shared_buffers=512MB", "max_wal_size=8GB", "checkpoint_timeout=30min", "max_connections=100"]
BATCH = 100  # items per bulk call: the arrays of the *batch* workloads' scripts
# reserve_spread and its baselines, run side by side on both configurations.
SPREAD_GROUP = ["bare_spread", "cte_spread", "cte_fn_spread", "model_fn_spread", "reserve_spread"]
# Orders as they happen (SPEC v1.2), side by side with a conversion and a payment over the same
# 1,000 lines: a hold and its raise, a hold shipped in two parts, ten invoices booked and paid by a
# remittance naming them. Their per-call cost targets are in instructions (benchmarks/instructions.py).
ORDERS_GROUP = ["convert_spread", "amend_spread", "ship_spread", "payment_spread", "remit_spread"]

# The SQL the bench runs, shipped in the package: the baselines' schema, and
# one pgbench script per workload (bench_sql/workloads/NAME.sql), each runnable
# with pgbench -f as it is. What the baselines (a)-(e) are: baselines.sql.
BENCH_SQL = Path(__file__).resolve().parent / "bench_sql"
# The bare UPDATE's table on its own: the A/B's databases need it alone (the
# rest of the baselines creates roles, once per cluster).
BARE_SQL = (BENCH_SQL / "bare.sql").read_text(encoding="utf-8")
BASELINE_SQL = BARE_SQL + (BENCH_SQL / "baselines.sql").read_text(encoding="utf-8")
SCRIPTS = {p.stem: p.read_text(encoding="utf-8") for p in sorted((BENCH_SQL / "workloads").glob("*.sql"))}


@dataclass
class Result:
    name: str
    clients: int
    tps: float  # transactions (calls) per second
    p50_ms: float
    p99_ms: float
    config: str = "tuned"
    items: int = 1  # items per call: BATCH for the bulk calls
    baseline: str = ""
    ratio: float | None = None  # of items/s

    @property
    def items_per_s(self) -> float:
        return self.tps * self.items


@dataclass
class Target:
    what: str
    ratio: float | None
    minimum: float | None  # None: reported, no minimum
    config: str = "tuned"
    rounds: str = ""

    @property
    def met(self) -> bool:
        return self.minimum is None or (self.ratio is not None and self.ratio >= self.minimum)


def _percentiles(latencies_us: list[float]) -> tuple[float, float]:
    if len(latencies_us) < 2:
        return (latencies_us[0] / 1000, latencies_us[0] / 1000) if latencies_us else (0.0, 0.0)
    q = statistics.quantiles(latencies_us, n=100, method="inclusive")
    return q[49] / 1000, q[98] / 1000


# --quick runs each pgbench for this many transactions per client instead of
# for a number of seconds: it shows that every workload runs and reports, in
# a fraction of the time (the figures are not comparable either way).
QUICK_TRANSACTIONS = 20


class Bench:
    def __init__(self, server: embedded.Server, seconds: int, work: Path, transactions: int | None = None):
        self.server, self.seconds, self.work = server, seconds, work
        self.transactions = transactions  # per client, instead of seconds (--quick)
        self.results: dict[tuple[str, int, str], Result] = {}
        # Interleaved rounds of one workload: (tps, latencies in µs) per round.
        self.rounds: dict[tuple[str, int, str], list[tuple[float, list[float]]]] = {}
        self.step = 0
        self.total = 0  # runs planned, for the progress lines
        self.checkpoint = True  # a CHECKPOINT before each run: none lands inside it
        self.use("tuned", server.conninfo("bench"), "prepared")

    def use(self, config: str, dsn: str, protocol: str) -> None:
        """Where the next runs go: a server configuration, its DSN and pgbench's query protocol."""
        self.config, self.dsn, self.protocol = config, dsn, protocol

    def _say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def pgbench(self, name: str, script: str, clients: int, seconds: int | None = None, items: int = 1,
                **variables) -> Result:
        """One run. Runs of the same workload, client count and configuration
        are rounds: its result is the median round's tps, with p50/p99 over
        all of them."""
        seconds = seconds or self.seconds
        self.step += 1
        # A batch is a hundred calls: a few of them show that it runs.
        transactions = self.transactions and (self.transactions if items == 1 else 2)
        length = f"{transactions} transactions per client" if transactions else f"{seconds} s"
        self._say(f"[{self.step}/{self.total}] {name}, {clients} client(s), {self.config}, {length} ...")
        if self.checkpoint:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute("CHECKPOINT")
        path = self.work / f"{name}.sql"
        path.write_text(script)
        logs = self.work / f"log-{self.step}"
        logs.mkdir()
        params = psycopg.conninfo.conninfo_to_dict(self.dsn)
        cmd = [str(self.server.bin / "pgbench"), "-n", "-M", self.protocol, "-c", str(clients),
               "-j", str(min(clients, os.cpu_count() or 1)),
               *(["-t", str(transactions)] if transactions else ["-T", str(seconds)]), "-P", "1",
               "-l", "--log-prefix", str(logs / "tx"), "-f", str(path),
               "-h", params["host"], "-p", str(params["port"]), "-U", params["user"]]
        cmd += [f"-D{k}={v}" for k, v in variables.items()]
        started = time.perf_counter()
        done = subprocess.run(cmd + [params["dbname"]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode:
            raise RuntimeError(f"pgbench failed for {name}:\n{done.stdout[-3000:]}")
        latencies = []
        for f in glob.glob(str(logs / "tx*")):
            with open(f) as fh:
                latencies += [float(line.split()[2]) for line in fh]
        tps = len(latencies) / (elapsed if transactions else seconds)
        key = (name, clients, self.config)
        rounds = self.rounds.setdefault(key, [])
        rounds.append((tps, latencies))
        p50, p99 = _percentiles([x for _, lat in rounds for x in lat])
        result = Result(name, clients, statistics.median_low([t for t, _ in rounds]), p50, p99, self.config, items)
        self.results[key] = result
        per = f" ({tps * items:,.0f} items/s)" if items > 1 else ""
        self._say(f"      {tps:,.0f} tps{per}, p50 {_percentiles(latencies)[0]:.2f} ms" + (
            f" (median of {len(rounds)} rounds so far: {result.tps:,.0f} tps)" if len(rounds) > 1 else ""))
        return result

    def python_client(self, name: str, clients: int) -> Result:
        """The same reservations as reserve_hot, through CreditClient, one
        connection per thread."""
        self.step += 1
        self._say(f"[{self.step}/{self.total}] {name}, {clients} client(s), {self.config}, {self.seconds} s ...")
        latencies: list[list[float]] = [[] for _ in range(clients)]
        stop = threading.Event()
        gate = threading.Barrier(clients + 1)

        def worker(i: int) -> None:
            client = CreditClient(psycopg.connect(self.dsn, autocommit=True))
            n = 0
            gate.wait()
            while not stop.is_set():
                n += 1
                started = time.perf_counter()
                client.reserve_credit("bench", "hot", f"py{i}.{n}", Decimal(1))
                latencies[i].append((time.perf_counter() - started) * 1e6)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        gate.wait()
        time.sleep(self.seconds)
        stop.set()
        for t in threads:
            t.join()
        flat = [x for per in latencies for x in per]
        p50, p99 = _percentiles(flat)
        result = Result(name, clients, len(flat) / self.seconds, p50, p99, self.config)
        self.results[(name, clients, self.config)] = result
        self._say(f"      {result.tps:,.0f} calls/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        return result

    def build_history(self, retailer: str, rows: int) -> None:
        """`rows` payments and `rows` released holds on one line, built in
        batches of short transactions: one transaction updating the line row
        hundreds of thousands of times would walk an ever longer version chain."""
        if rows == 0:
            return
        self._say(f"building {rows:,} ledger rows and {rows:,} released holds on line {retailer} ...")
        batch = 50_000
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            line = conn.execute("SELECT id FROM credit.line WHERE wholesaler_id = 'bench' AND retailer_id = %s",
                                [retailer]).fetchone()[0]
            for start in range(0, rows, batch):
                end = min(start + batch, rows)
                with conn.transaction():
                    conn.execute("""
                        INSERT INTO credit.ledger_entry (line_id, entry_type, amount, ref, created_at)
                        SELECT %(line)s, 'CREDIT', 1, 'hist-' || g, now() - interval '1 day'
                          FROM generate_series(%(start)s, %(end)s - 1) g""", dict(line=line, start=start, end=end))
                    conn.execute("""
                        INSERT INTO credit.reservation (line_id, order_ref, amount, status, created_at,
                                                        released_at, released_amount)
                        SELECT %(line)s, 'hist-' || g, 1, 'released', now() - interval '1 day', now(), 1
                          FROM generate_series(%(start)s, %(end)s - 1) g""", dict(line=line, start=start, end=end))
                    conn.execute("UPDATE credit.line SET outstanding = outstanding - %s,"
                                 " unapplied = unapplied + %s WHERE id = %s", [end - start, end - start, line])

    def build_naive_history(self, rows: int) -> None:
        self._say(f"building {rows:,} ledger rows for the source design's line ...")
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for start in range(0, rows, 100_000):
                conn.execute("INSERT INTO bench.naive_ledger (line_id, amount) SELECT 2, 1 "
                             "FROM generate_series(1, %s)", [min(100_000, rows - start)])


def _compare(results, name, clients, base, base_clients, config="tuned", label=None) -> None:
    r, b = results.get((name, clients, config)), results.get((base, base_clients, config))
    if r and b and b.tps:
        r.baseline, r.ratio = label or f"{base} @{base_clients}", r.items_per_s / b.items_per_s


def _round_ratios(b: Bench, a: tuple, base: tuple) -> str:
    """The ratio in each interleaved round, where both sides ran in rounds."""
    ra, rb = b.rounds.get(a, []), b.rounds.get(base, [])
    if len(ra) > 1 and len(ra) == len(rb):
        return ", ".join(f"{x[0] / y[0]:.2f}" for x, y in zip(ra, rb) if y[0])
    return ""


def _targets(b: Bench, naive: str) -> list[Target]:
    """The issue's targets, each a ratio of two workloads measured in this one run."""
    results = b.results
    wanted = [
        ("reserve_credit_batch of 100, hot line, 8 clients, items/s / bare single-row UPDATE tps",
         ("reserve_batch_hot", 8), ("bare_hot", 8), 10.0, ["tuned"]),
        ("reserve_credit_batch of 100 over 1,000 lines, 8 clients, items/s / bare single-row UPDATE tps",
         ("reserve_batch_spread", 8), ("bare_hot", 8), None, ["tuned"]),
        ("record_payment_batch of 100 over 1,000 lines, 8 clients, items/s / bare single-row UPDATE tps",
         ("payment_batch", 8), ("bare_hot", 8), 5.0, ["tuned"]),
        ("hot reserve_credit / bare single-row UPDATE, 8 clients", ("reserve_hot", 8), ("bare_hot", 8), 0.7,
         ["tuned", "default"]),
        ("spread reserve_credit / minimal reservation (one CTE), 32 clients",
         ("reserve_spread", 32), ("cte_spread", 32), 0.9, ["tuned", "default"]),
        ("reserve_credit with the largest history / empty line, 8 clients",
         ("reserve_history_h1m", 8), ("reserve_history_h0", 8), 0.9, ["tuned", "default"]),
        ("spread reserve_credit / bare UPDATE over 1,000 rows, 32 clients (moonshot 0.5)",
         ("reserve_spread", 32), ("bare_spread", 32), None, ["tuned", "default"]),
        ("minimal reservation (one CTE) / bare UPDATE over 1,000 rows, 32 clients",
         ("cte_spread", 32), ("bare_spread", 32), None, ["tuned", "default"]),
        ("the CTE in a SECURITY DEFINER PL/pgSQL function, nothing else / the CTE, 32 clients (this design's floor)",
         ("cte_fn_spread", 32), ("cte_spread", 32), None, ["tuned", "default"]),
        ("the same over SPEC's data model (credit.reservation, credit.line), nothing else / the CTE, 32 clients"
         " (the floor under any reserve_credit)", ("model_fn_spread", 32), ("cte_spread", 32), None, ["tuned", "default"]),
        ("spread reserve_credit / that floor, 32 clients", ("reserve_spread", 32), ("model_fn_spread", 32), None,
         ["tuned", "default"]),
        (f"reserve_credit with the largest history / source design ({naive}), 8 clients",
         ("reserve_history_h1m", 8), (naive, 8), 30.0, ["tuned"]),
        ("Python client / pgbench, hot reserve_credit, 8 clients", ("python_reserve_hot", 8), ("reserve_hot", 8), 0.5,
         ["tuned"]),
    ]
    out = []
    for what, a, base, minimum, configs in wanted:
        for config in configs:
            ka, kb = (*a, config), (*base, config)
            if ka in results and kb in results and results[kb].tps:
                out.append(Target(what, results[ka].items_per_s / results[kb].items_per_s, minimum, config,
                                  _round_ratios(b, ka, kb)))
    return out


def run(out: Path, quick: bool = False, only: str | None = None) -> list[Result]:
    """The whole benchmark; only: a comma-separated list of fnmatch patterns
    of workload names (e.g. 'bare_hot,reserve_hot'), for a shorter look."""
    seconds = 1 if quick else 10
    rounds, round_seconds = (1, 1) if quick else (3, 5)
    clients = [1, 8] if quick else [1, 8, 32]
    top = clients[-1]  # the spread targets' client count: 32 (8 with --quick)
    sizes = {"h0": 0, "h100k": 1_000 if quick else 100_000, "h1m": 10_000 if quick else 1_000_000}
    naive_rows = 5_000 if quick else 500_000
    naive = f"naive_{naive_rows // 1000}k"
    patterns = [p.strip() for p in only.split(",")] if only else ["*"]

    def wanted(name: str) -> bool:
        return any(fnmatch.fnmatch(name, p) for p in patterns)

    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pgcredit-bench-"))
    try:
        with embedded.throwaway(settings=tuple(SETTINGS)) as server:
            dsn = server.ensure_database("bench")
            migrate(dsn)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(BASELINE_SQL)
                version = conn.execute("SHOW server_version").fetchone()[0]
            client = CreditClient(dsn)
            for line in ["hot", *sizes, *[f"s{i}" for i in range(1000)]]:
                client.open_line("bench", line, Decimal(10) ** 15)
            client.close()
            b = Bench(server, seconds, work, QUICK_TRANSACTIONS if quick else None)
            history = [n for n in sizes if wanted(f"reserve_history_{n}")]
            for name in history:
                b.build_history(name, sizes[name])
            if wanted("naive_*"):
                b.build_naive_history(naive_rows)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")

            # Each ratio to a baseline compares runs made side by side: the
            # workloads alternate in short rounds, and each keeps its median
            # round, so that a burst of load from elsewhere on a shared machine
            # lands on all of them or is outvoted.
            def interleaved(group: list[str], at: list[int]) -> list:
                # One client waits on nothing but its own commits: its figures
                # are the steadiest, and one round is enough there.
                return [lambda c=c, w=w: b.pgbench(w, SCRIPTS[w], c, round_seconds)
                        for c in at for _ in range(rounds if c > 1 else 1) for w in group if wanted(w)]

            def once(name: str, script: str, c: int, **kw) -> list:
                return [lambda: b.pgbench(name, script, c, **kw)] if wanted(name) else []

            tuned = interleaved(["bare_hot", "reserve_hot"], clients)
            tuned += interleaved(SPREAD_GROUP, clients)
            tuned += once("reserve_spread_expiring", SCRIPTS["reserve_spread_expiring"], top)
            tuned += once("lifecycle", SCRIPTS["lifecycle"], 8)
            tuned += interleaved(ORDERS_GROUP, [8])
            for n in history:
                tuned += once(f"reserve_history_{n}", SCRIPTS["reserve_hot"].replace("'hot'", f"'{n}'"), 8)
            tuned += once("naive_small", SCRIPTS["naive"], 8, line=1)
            tuned += once(naive, SCRIPTS["naive"], 8, line=2)
            for name in ("reserve_batch_hot", "reserve_batch_spread", "payment_batch"):
                tuned += once(name, SCRIPTS[name], 8, items=BATCH)
            if wanted("python_reserve_hot"):
                tuned += [lambda c=c: b.python_client("python_reserve_hot", c) for c in clients]

            # The same cluster with PostgreSQL's defaults, over TCP, simple protocol.
            default = interleaved(["bare_hot", "reserve_hot"], [8])
            default += interleaved(SPREAD_GROUP, [top])
            for n in ("h0", "h1m"):
                if n in history:
                    default += once(f"reserve_history_{n}", SCRIPTS["reserve_hot"].replace("'hot'", f"'{n}'"), 8)

            b.total = len(tuned) + len(default)
            for step in tuned:
                step()
            settings = {"tuned": _settings(dsn)}
            if default:
                port = embedded.free_port()
                server.stop()
                server.start("listen_addresses=127.0.0.1", f"port={port}")
                tcp = psycopg.conninfo.make_conninfo(host="127.0.0.1", port=port, user="postgres", dbname="bench")
                b.use("default", tcp, "simple")
                with psycopg.connect(tcp, autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE")
                for step in default:
                    step()
                settings["default"] = _settings(tcp)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    r = b.results
    for config in ("tuned", "default"):
        for c in clients:
            _compare(r, "reserve_hot", c, "bare_hot", c, config)
            _compare(r, "reserve_spread", c, "cte_spread", c, config)
            _compare(r, "cte_spread", c, "bare_spread", c, config)
            _compare(r, "cte_fn_spread", c, "cte_spread", c, config)
            _compare(r, "model_fn_spread", c, "cte_spread", c, config)
            _compare(r, "python_reserve_hot", c, "reserve_hot", c, config, f"pgbench reserve_hot @{c}")
        for name in sizes:
            _compare(r, f"reserve_history_{name}", 8, "reserve_history_h0", 8, config)
    _compare(r, "reserve_spread_expiring", top, "reserve_spread", top)
    _compare(r, "lifecycle", 8, "reserve_spread", 8)
    _compare(r, "ship_spread", 8, "convert_spread", 8)
    _compare(r, naive, 8, "naive_small", 8)
    for name in ("reserve_batch_hot", "reserve_batch_spread", "payment_batch"):
        _compare(r, name, 8, "bare_hot", 8)
    results, targets = list(r.values()), _targets(b, naive)
    meta = dict(version=version, settings=settings, seconds=seconds, quick=quick, rounds=rounds,
                round_seconds=round_seconds, only=only)
    table = markdown(results, targets, meta)
    print(table)
    (out / "bench.md").write_text(table)
    plot(results, out / "bench.png")
    return results


class FeedFollower(threading.Thread):
    """A consumer of the event feed while a workload runs, where the database
    has one: it calls events_after as CreditClient.events() does (pages of
    1,000, the same pauses when caught up) and keeps, for every event, the
    seconds from its transaction's start (created_at) to the moment the server
    handed it over: an upper bound on how long after its commit the event
    became readable. Its calls, and the horizon they advance, load the
    server as a real consumer would. There is no wake-up signal to measure
    apart: writers send none (a NOTIFY in every transaction would serialise
    their commits), so what wakes a reader is its own polling, and that is
    what this does and what the side it follows pays for."""

    PAGE = 1000

    def __init__(self, dsn: str):
        super().__init__(daemon=True)
        self.dsn, self.stop, self.latencies = dsn, threading.Event(), []
        self.ready = threading.Event()

    @staticmethod
    def available(dsn: str) -> bool:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return conn.execute("SELECT to_regproc('credit.events_after') IS NOT NULL").fetchone()[0]

    def run(self) -> None:
        from ..client import _Waits

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            query = ("SELECT e.event_id, extract(epoch FROM clock_timestamp() - e.created_at)::float8"
                     " FROM credit.events_after(%s, %s) e")
            cursor = 0
            while True:  # what earlier runs left: not this run's figures
                page = conn.execute(query, [cursor, self.PAGE]).fetchall()
                if page:
                    cursor = page[-1][0]
                if len(page) < self.PAGE:
                    break
            self.ready.set()
            waits = _Waits(0.5)
            while not self.stop.is_set():
                page = conn.execute(query, [cursor, self.PAGE]).fetchall()
                if page:
                    cursor = page[-1][0]
                    self.latencies += [lat for _, lat in page]
                pause = waits.after(len(page), self.PAGE)
                if pause:
                    self.stop.wait(pause)
            while True:  # the run's last events, committed since the last poll
                page = conn.execute(query, [cursor, self.PAGE]).fetchall()
                if page:
                    cursor = page[-1][0]
                    self.latencies += [lat for _, lat in page]
                if len(page) < self.PAGE:
                    break


# The A/B's workloads: the single calls, and the hot batch with its baseline
# (a batch's items/s against the bare UPDATE's tps on each side).
AB_WORKLOADS = [("reserve_hot", 8), ("reserve_spread", 32), ("reserve_spread", 8), ("convert_spread", 8),
                ("payment_spread", 8), ("reserve_batch_hot", 8), ("bare_hot", 8)]
AB_CONFIGS = ["tuned", "default"]
# `pgcredit bench --events`: what the feed costs reserve_credit (SPEC: with
# events it keeps >= 0.9 of its throughput without them) and how soon an
# event is readable under that load (within 1 s of its commit).
EVENTS_WORKLOADS = [("reserve_hot", 8), ("reserve_spread", 32)]
EVENTS_MIN_RATIO = 0.9
EVENTS_MAX_P99_S = 1.0
# Side A of --events: the same SQL with the feed's writes discarded. Every
# event is an INSERT into credit.event (credit._event, and reserve_credit's
# fast path inline); the rule turns each into no statement at all, so A pays
# for the call to the writer on the slow path and nothing else (no event_id
# drawn, no row, no index entry), and no consumer follows it.
EVENTS_OFF = "CREATE RULE bench_no_events AS ON INSERT TO credit.event DO INSTEAD NOTHING"


def run_events(out: Path, quick: bool = False, only: str | None = None,
               readers: int = 1) -> list[tuple[str, list[float]]]:
    """reserve_credit with the event feed (B, followed by `readers`
    consumers polling as CreditClient.events() does) against the same SQL
    without it (A: EVENTS_OFF), spread@32 and hot@8, on the tuned and the
    default cluster, as run_ab runs its A/B; with the targets' verdicts."""
    return run_ab(out, None, quick=quick, only=only, workloads=EVENTS_WORKLOADS, without_events=True,
                  readers=readers)


def run_ab(out: Path, base_sql: Path | None, quick: bool = False, only: str | None = None,
           workloads: list[tuple[str, int]] | None = None, without_events: bool = False,
           readers: int = 1) -> list[tuple[str, list[float]]]:
    """What a change costs the calls: the same workloads against a
    database built from another sql/ tree (A, e.g. the last release from git)
    and one built from this installation's (B), on one cluster, alternating
    A, B, B, A, A, B ... in short rounds (which side goes first alternates,
    so that whatever one run leaves behind, such as autovacuum work or dirty
    buffers for the next CHECKPOINT, falls on both sides alike); on the tuned
    cluster, then on the same cluster with PostgreSQL's defaults (TCP, simple
    protocol), as `pgcredit bench` does. Reports B/A per round pair, their
    median and range, and on each side the hot batch's items/s over the bare
    UPDATE's tps. A side whose database has the event feed is followed by a
    consumer (FeedFollower) during its rounds, so its figures include what
    reading the feed costs; the report gives that consumer's latency.
    only: fnmatch patterns of workload names (as run's) or of
    CONFIG:WORKLOAD@CLIENTS (e.g. 'default:reserve_spread@32').
    without_events: A is this installation's SQL too, with the feed's writes
    discarded (EVENTS_OFF; base_sql unused), and the report says whether the
    events targets are met. readers: consumers following a side's feed."""
    rounds, seconds = (1, 1) if quick else (5, 5)
    workloads_run = workloads or AB_WORKLOADS
    patterns = [p.strip() for p in only.split(",")] if only else ["*"]

    def chosen(config: str, name: str, clients: int) -> bool:
        return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(f"{config}:{name}@{clients}", p) for p in patterns)

    work = Path(tempfile.mkdtemp(prefix="pgcredit-bench-"))
    pairs: list[tuple[str, list[float]]] = []
    feed: dict[str, list[float]] = {}
    settings: dict[str, dict[str, str]] = {}
    per_side: dict[tuple[str, str, str], list[float]] = {}
    try:
        with embedded.throwaway(settings=tuple(SETTINGS)) as server:
            dsns = {}
            for side, root in (("a", None if without_events else base_sql), ("b", None)):
                dsns[side] = server.ensure_database(f"bench_{side}")
                migrate(dsns[side], root)
                with psycopg.connect(dsns[side], autocommit=True) as conn:
                    conn.execute(BARE_SQL)
                    if without_events and side == "a":
                        conn.execute(EVENTS_OFF)
                client = CreditClient(dsns[side])
                for line in ["hot", *[f"s{i}" for i in range(1000)]]:
                    client.open_line("bench", line, Decimal(10) ** 15)
                client.close()
                with psycopg.connect(dsns[side], autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE")
            followed = {side: FeedFollower.available(dsn) and not (without_events and side == "a")
                        for side, dsn in dsns.items()}
            version = psycopg.connect(dsns["b"]).execute("SHOW server_version").fetchone()[0]
            benches = {}
            for side in dsns:
                (work / side).mkdir()
                benches[side] = Bench(server, seconds, work / side, QUICK_TRANSACTIONS if quick else None)
                benches[side].total = rounds * sum(chosen(c, n, k) for c in AB_CONFIGS for n, k in workloads_run)
            for config in AB_CONFIGS:
                chosen_here = [(n, c) for n, c in workloads_run if chosen(config, n, c)]
                if not chosen_here:
                    continue
                if config == "default":
                    port = embedded.free_port()
                    server.stop()
                    server.start("listen_addresses=127.0.0.1", f"port={port}")
                    dsns = {side: psycopg.conninfo.make_conninfo(host="127.0.0.1", port=port, user="postgres",
                                                                 dbname=f"bench_{side}") for side in dsns}
                for side, dsn in dsns.items():
                    benches[side].use(config, dsn, "prepared" if config == "tuned" else "simple")
                settings[config] = _settings(dsns["b"])
                for name, clients in chosen_here:
                    ratios = []
                    for k in range(rounds):
                        tps = {}
                        for side in (("a", "b") if k % 2 == 0 else ("b", "a")):
                            followers = [FeedFollower(dsns[side]) for _ in range(readers if followed[side] else 0)]
                            for follower in followers:
                                follower.start()
                                follower.ready.wait()
                            tps[side] = benches[side].pgbench(f"{name}_{side}", SCRIPTS[name], clients).tps
                            for follower in followers:
                                follower.stop.set()
                                follower.join()
                                feed.setdefault(f"{config} | {name} @{clients} | {side.upper()}", []).extend(
                                    follower.latencies)
                        for bench in benches.values():
                            bench.rounds.clear()  # each pair is a ratio of its own
                        ratios.append(tps["b"] / tps["a"])
                        for side in tps:
                            per_side.setdefault((config, name, side), []).append(tps[side])
                    pairs.append((f"{config} | {name} @{clients}", ratios))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    def follow(side: str) -> str:
        return f", its feed followed by {readers} consumer(s)" if followed[side] and readers else ""

    a = ("this installation's sql/ with the event feed's writes discarded (no event written, no consumer)"
         if without_events else str(base_sql) + follow("a"))
    b = "this installation's sql/" + follow("b")
    lines = [f"A: {a}; B: {b}. PostgreSQL {version}; A and B alternate (ABBA...) in {rounds} rounds of "
             f"{seconds} s each; {os.cpu_count()} CPUs; load average at the end "
             f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}"
             + (f" (--quick: {QUICK_TRANSACTIONS} transactions per client instead, figures not comparable)"
                if quick else ""), ""]
    how = {"tuned": "Unix socket, pgbench -M prepared", "default": "TCP 127.0.0.1, pgbench -M simple"}
    for config, values in settings.items():
        lines.append(f"- **{config}** ({how[config]}): " + ", ".join(f"{k}={v}" for k, v in values.items()))
    lines += ["", "| server | workload | B/A per round | median | range |", "|---|---|---|---|---|"]
    for what, ratios in pairs:
        lines.append(f"| {what} | {', '.join(f'{r:.3f}' for r in ratios)} | {statistics.median(ratios):.3f} | "
                     f"{min(ratios):.3f}–{max(ratios):.3f} |")
    for config in AB_CONFIGS:
        if (config, "reserve_batch_hot", "a") in per_side and (config, "bare_hot", "a") in per_side:
            lines += ["", f"{config}: reserve_batch_hot @8 items/s ({BATCH} items per call) / bare_hot @8 tps, "
                          "each the median of its rounds:", ""]
            for side in ("a", "b"):
                ratio = (statistics.median(per_side[(config, "reserve_batch_hot", side)]) * BATCH
                         / statistics.median(per_side[(config, "bare_hot", side)]))
                lines.append(f"- {side.upper()}: {ratio:.2f}")
    p99s: dict[str, float] = {}
    if feed:
        lines += ["", f"The event feed, followed by {readers} consumer(s) (pages of 1,000, polling as "
                  "CreditClient.events() does) during that side's rounds: seconds from each event's transaction "
                  "start to its delivery (an upper bound on commit to readable).", "",
                  "| server | workload | side | events | p50 s | p99 s | max s |", "|---|---|---|---|---|---|---|"]
        for what, lat in feed.items():
            if lat:
                q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [lat[0]] * 99
                p99s[what] = q[98]
                lines.append(f"| {what} | {len(lat):,} | {q[49]:.3f} | {q[98]:.3f} | {max(lat):.3f} |")
    if without_events:
        lines += ["", "| server | workload | target | value | wanted | |", "|---|---|---|---|---|---|"]
        for what, ratios in pairs:
            median = statistics.median(ratios)
            lines.append(f"| {what} | with events / without, median | {median:.3f} | ≥ {EVENTS_MIN_RATIO:g} | "
                         f"{'met' if median >= EVENTS_MIN_RATIO else 'MISSED'} |")
            p99 = p99s.get(f"{what} | B")
            lines.append(f"| {what} | an event readable after its commit, p99 s | "
                         + (f"{p99:.3f} | ≤ {EVENTS_MAX_P99_S:g} | {'met' if p99 <= EVENTS_MAX_P99_S else 'MISSED'} |"
                            if p99 is not None else "no event delivered | ≤ 1 | MISSED |"))
    text = "\n".join(lines) + "\n"
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / ("events.md" if without_events else "ab.md")).write_text(text)
    return pairs


def _settings(dsn: str) -> dict[str, str]:
    """The settings that shape these figures, as the server reports them."""
    names = ["fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers", "max_wal_size",
             "checkpoint_timeout", "wal_buffers", "listen_addresses"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}


def markdown(results: list[Result], targets: list[Target], meta: dict) -> str:
    how = {"tuned": "Unix socket, pgbench -M prepared", "default": "TCP 127.0.0.1, pgbench -M simple"}
    lines = [f"PostgreSQL {meta['version']}, {os.cpu_count()} CPUs; {meta['seconds']} s per run; workloads "
             f"compared with a baseline alternate with it in {meta['rounds']} rounds of {meta['round_seconds']} s "
             f"and keep their median round"
             + (f" (--quick: sizes reduced, {QUICK_TRANSACTIONS} transactions per client per run, figures not "
                "comparable)" if meta["quick"] else "")
             + (f"; only {meta['only']}" if meta["only"] else ""), ""]
    for config, values in meta["settings"].items():
        lines.append(f"- **{config}** ({how[config]}): " + ", ".join(f"{k}={v}" for k, v in values.items()))
    lines += ["", "| server | workload | clients | tps | items/s | p50 ms | p99 ms | compared with | ratio |",
              "|---|---|---|---|---|---|---|---|---|"]
    for x in results:
        ratio = f"{x.ratio:.2f}" if x.ratio is not None else ""
        items = f"{x.items_per_s:,.0f}" if x.items > 1 else ""
        lines.append(f"| {x.config} | {x.name} | {x.clients} | {x.tps:,.0f} | {items} | {x.p50_ms:.2f} | "
                     f"{x.p99_ms:.2f} | {x.baseline} | {ratio} |")
    lines += ["", "| server | target | ratio | rounds | wanted | |", "|---|---|---|---|---|---|"]
    for t in targets:
        wanted = f"≥ {t.minimum:g}" if t.minimum is not None else "reported"
        verdict = "" if t.minimum is None else ("met" if t.met else "MISSED")
        lines.append(f"| {t.config} | {t.what} | {t.ratio:.3f} | {t.rounds} | {wanted} | {verdict} |")
    return "\n".join(lines) + "\n"


def plot(results: list[Result], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no plot; pip install 'pgcredit[bench]')", file=sys.stderr)
        return
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(18, 5.5))
    tuned = [x for x in results if x.config == "tuned"]
    for name, style in [("bare_hot", "k--"), ("reserve_hot", "C0-o"), ("python_reserve_hot", "C2-^"),
                        ("bare_spread", "k:"), ("cte_spread", "C3-.d"), ("reserve_spread", "C1-s")]:
        pts = sorted((x.clients, x.tps) for x in tuned if x.name == name)
        if pts:
            left.plot([p[0] for p in pts], [p[1] for p in pts], style, label=name)
    ticks = sorted({x.clients for x in tuned}) or [1]
    left.set(xscale="log", xlabel="clients", ylabel="calls / s", title="Single calls vs the baselines (tuned)")
    left.set_xticks(ticks, labels=[str(c) for c in ticks])
    left.legend(fontsize=8)
    # The targets' pairs on both server configurations.
    pairs = [("bare_hot", 8), ("reserve_hot", 8), ("bare_spread", 32), ("cte_spread", 32), ("cte_fn_spread", 32),
             ("model_fn_spread", 32), ("reserve_spread", 32)]
    labels = [f"{n} @{c}" for n, c in pairs]
    width = 0.4
    for k, (config, color) in enumerate([("tuned", "C0"), ("default", "C1")]):
        values = [next((x.tps for x in results if (x.name, x.clients, x.config) == (n, c, config)), 0)
                  for n, c in pairs]
        middle.barh([i + k * width for i in range(len(pairs))], values, width, color=color,
                    label={"tuned": "tuned, socket, prepared", "default": "defaults, TCP, simple"}[config])
    middle.set_yticks([i + width / 2 for i in range(len(pairs))], labels=labels)
    middle.set(xlabel="calls / s", title="Both server configurations")
    middle.legend(fontsize=8)
    bars = [x for x in tuned if x.name.startswith(("reserve_history", "naive", "lifecycle", "reserve_batch",
                                                    "payment_batch"))]
    right.barh([x.name for x in bars], [x.items_per_s for x in bars], color="C0")
    right.axvline(next((x.tps for x in tuned if (x.name, x.clients) == ("bare_hot", 8)), 0), color="k", ls="--",
                  label="bare_hot @8")
    right.set(xscale="log", xlabel="items / s (8 clients, log scale)", title="Bulk calls, history, source design")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
