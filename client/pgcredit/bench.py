"""`pgcredit bench`: pgcredit against the physical limit and against the design
it replaces, in one run, on a cluster of its own with fsync and
synchronous_commit on.

SQL workloads are driven by pgbench (prepared statements); latency percentiles
come from pgbench's per-transaction logs. The Python client is driven by
threads at the same concurrency.
"""

from __future__ import annotations

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
from .client import CreditClient
from .migrate import migrate

# Durable settings (fsync, synchronous_commit and full_page_writes keep their
# defaults: on). Checkpoints are spread out so that none lands inside a short run.
SETTINGS = ["shared_buffers=512MB", "max_wal_size=8GB", "checkpoint_timeout=30min", "max_connections=100"]

BASELINE_SQL = """
CREATE SCHEMA bench;
-- (a) The physical limit: one conditional UPDATE of one row per reservation.
CREATE TABLE bench.bare (id int PRIMARY KEY, used numeric NOT NULL, lim numeric NOT NULL);
INSERT INTO bench.bare SELECT g, 0, 1e15 FROM generate_series(0, 999) g;
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
"""

RESERVE = "SELECT code FROM credit.reserve_credit('bench', {line}, :client_id || '.' || :n, 1{expiry});"
SPREAD = "\\set n random(1, 2000000000)\n\\set l random(0, 999)\n"
SCRIPTS = {
    "reserve_hot": "\\set n random(1, 2000000000)\n" + RESERVE.format(line="'hot'", expiry=""),
    "reserve_spread": SPREAD + RESERVE.format(line="'s' || :l", expiry=""),
    # Holds that expire also enter the expiry index: what that costs.
    "reserve_spread_expiring": SPREAD + RESERVE.format(line="'s' || :l", expiry=", interval '1 hour'"),
    "lifecycle": """\\set n random(1, 2000000000)
\\set l random(0, 999)
\\set deliver random(0, 1)
SELECT code FROM credit.reserve_credit('bench', 's' || :l, 'c' || :client_id || '.' || :n, 100);
\\if :deliver
SELECT code FROM credit.convert_to_debit('bench', 's' || :l, 'c' || :client_id || '.' || :n);
\\else
SELECT code FROM credit.release_reservation('bench', 's' || :l, 'c' || :client_id || '.' || :n);
\\endif
""",
    "bare_hot": "UPDATE bench.bare SET used = used + 1 WHERE id = 0 AND used + 1 <= lim;",
    "bare_spread": "\\set id random(0, 999)\nUPDATE bench.bare SET used = used + 1 WHERE id = :id AND used + 1 <= lim;",
    "naive": "SELECT bench.naive_reserve(:line, 1);",
}


@dataclass
class Result:
    name: str
    clients: int
    tps: float
    p50_ms: float
    p99_ms: float
    baseline: str = ""
    ratio: float | None = None


@dataclass
class Target:
    what: str
    ratio: float
    minimum: float

    @property
    def met(self) -> bool:
        return self.ratio >= self.minimum


def _percentiles(latencies_us: list[float]) -> tuple[float, float]:
    if len(latencies_us) < 2:
        return (latencies_us[0] / 1000, latencies_us[0] / 1000) if latencies_us else (0.0, 0.0)
    q = statistics.quantiles(latencies_us, n=100, method="inclusive")
    return q[49] / 1000, q[98] / 1000


class Bench:
    def __init__(self, server: embedded.Server, dsn: str, seconds: int, work: Path):
        self.server, self.dsn, self.seconds, self.work = server, dsn, seconds, work
        self.results: dict[tuple[str, int], Result] = {}
        # Interleaved rounds of one workload: (tps, latencies in µs) per round.
        self.rounds: dict[tuple[str, int], list[tuple[float, list[float]]]] = {}
        self.step = 0
        self.total = 0  # runs planned, for the progress lines

    def _say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def pgbench(self, name: str, script: str, clients: int, seconds: int | None = None, **variables) -> Result:
        """One run. Runs of the same workload and client count are rounds: its
        result is the median round's tps, with p50/p99 over all of them."""
        seconds = seconds or self.seconds
        self.step += 1
        self._say(f"[{self.step}/{self.total}] {name}, {clients} client(s), {seconds} s ...")
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        path = self.work / f"{name}.sql"
        path.write_text(script)
        logs = self.work / f"log-{self.step}"
        logs.mkdir()
        params = psycopg.conninfo.conninfo_to_dict(self.dsn)
        cmd = [str(self.server.bin / "pgbench"), "-n", "-M", "prepared", "-c", str(clients),
               "-j", str(min(clients, os.cpu_count() or 1)), "-T", str(seconds), "-P", "1",
               "-l", "--log-prefix", str(logs / "tx"), "-f", str(path),
               "-h", params["host"], "-p", str(params["port"]), "-U", params["user"]]
        cmd += [f"-D{k}={v}" for k, v in variables.items()]
        done = subprocess.run(cmd + [params["dbname"]], stdout=subprocess.PIPE, text=True)
        if done.returncode:
            raise RuntimeError(f"pgbench failed for {name}:\n{done.stdout}")
        latencies = []
        for f in glob.glob(str(logs / "tx*")):
            with open(f) as fh:
                latencies += [float(line.split()[2]) for line in fh]
        tps = len(latencies) / seconds
        rounds = self.rounds.setdefault((name, clients), [])
        rounds.append((tps, latencies))
        p50, p99 = _percentiles([x for _, lat in rounds for x in lat])
        result = Result(name, clients, statistics.median_low([t for t, _ in rounds]), p50, p99)
        self.results[(name, clients)] = result
        self._say(f"      {tps:,.0f} tps, p50 {_percentiles(latencies)[0]:.2f} ms" + (
            f" (median of {len(rounds)} rounds so far: {result.tps:,.0f} tps)" if len(rounds) > 1 else ""))
        return result

    def python_client(self, name: str, clients: int) -> Result:
        """The same reservations as reserve_hot, through CreditClient, one
        connection per thread."""
        self.step += 1
        self._say(f"[{self.step}/{self.total}] {name}, {clients} client(s), {self.seconds} s ...")
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
        result = Result(name, clients, len(flat) / self.seconds, p50, p99)
        self.results[(name, clients)] = result
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
                    conn.execute("UPDATE credit.line SET outstanding = outstanding - %s WHERE id = %s",
                                 [end - start, line])

    def build_naive_history(self, rows: int) -> None:
        self._say(f"building {rows:,} ledger rows for the source design's line ...")
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for start in range(0, rows, 100_000):
                conn.execute("INSERT INTO bench.naive_ledger (line_id, amount) SELECT 2, 1 "
                             "FROM generate_series(1, %s)", [min(100_000, rows - start)])


def _compare(results, name, clients, base, base_clients, label=None) -> None:
    r, b = results.get((name, clients)), results.get((base, base_clients))
    if r and b and b.tps:
        r.baseline, r.ratio = label or f"{base} @{base_clients}", r.tps / b.tps


def _targets(results, naive: str) -> list[Target]:
    """The issue's targets, each a ratio of two runs of this one run."""
    wanted = [
        ("hot reserve_credit / bare single-row UPDATE, 8 clients", ("reserve_hot", 8), ("bare_hot", 8), 0.7),
        ("spread reserve_credit / bare UPDATE over 1,000 rows, 32 clients",
         ("reserve_spread", 32), ("bare_spread", 32), 0.5),
        ("reserve_credit with the largest history / empty line, 8 clients",
         ("reserve_history_h1m", 8), ("reserve_history_h0", 8), 0.9),
        (f"reserve_credit with the largest history / source design ({naive}), 8 clients",
         ("reserve_history_h1m", 8), (naive, 8), 30.0),
        ("Python client / pgbench, hot reserve_credit, 8 clients", ("python_reserve_hot", 8), ("reserve_hot", 8), 0.5),
    ]
    out = []
    for what, a, b, minimum in wanted:
        if a in results and b in results and results[b].tps:
            out.append(Target(what, results[a].tps / results[b].tps, minimum))
    return out


def run(out: Path, quick: bool = False) -> list[Result]:
    seconds = 1 if quick else 10
    rounds, round_seconds = (1, 1) if quick else (3, 5)
    clients = [1, 8] if quick else [1, 8, 32]
    sizes = {"h0": 0, "h100k": 1_000 if quick else 100_000, "h1m": 10_000 if quick else 1_000_000}
    naive_rows = 5_000 if quick else 500_000
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pgcredit-bench-"))
    try:
        with embedded.throwaway(settings=tuple(SETTINGS)) as server:
            dsn = server.ensure_database("bench")
            migrate(dsn)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(BASELINE_SQL)
                version = conn.execute("SHOW server_version").fetchone()[0]
                fsync = conn.execute("SHOW fsync").fetchone()[0]
                sync = conn.execute("SHOW synchronous_commit").fetchone()[0]
            client = CreditClient(dsn)
            for line in ["hot", *sizes, *[f"s{i}" for i in range(1000)]]:
                client.open_line("bench", line, Decimal(10) ** 15)
            client.close()
            b = Bench(server, dsn, seconds, work)
            for name, rows in sizes.items():
                b.build_history(name, rows)
            b.build_naive_history(naive_rows)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")

            # Each ratio to the bare UPDATE compares runs made side by side: the
            # two workloads alternate in short rounds, and each keeps its median
            # round, so that a burst of load from elsewhere on a shared machine
            # lands on both or is outvoted.
            plan = [lambda c=c, w=w, k=k: b.pgbench(f"{w}_{k}", SCRIPTS[f"{w}_{k}"], c, round_seconds)
                    for k in ("hot", "spread") for c in clients for _ in range(rounds) for w in ("bare", "reserve")]
            plan.append(lambda: b.pgbench("reserve_spread_expiring", SCRIPTS["reserve_spread_expiring"], clients[-1]))
            plan.append(lambda: b.pgbench("lifecycle", SCRIPTS["lifecycle"], 8))
            plan += [lambda n=n: b.pgbench(f"reserve_history_{n}", SCRIPTS["reserve_hot"].replace("'hot'", f"'{n}'"), 8)
                     for n in sizes]
            plan.append(lambda: b.pgbench("naive_small", SCRIPTS["naive"], 8, line=1))
            plan.append(lambda: b.pgbench(f"naive_{naive_rows // 1000}k", SCRIPTS["naive"], 8, line=2))
            plan += [lambda c=c: b.python_client("python_reserve_hot", c) for c in clients]
            b.total = len(plan)
            for step in plan:
                step()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    r = b.results
    for c in clients:
        _compare(r, "reserve_hot", c, "bare_hot", c)
        _compare(r, "reserve_spread", c, "bare_spread", c)
        _compare(r, "python_reserve_hot", c, "reserve_hot", c, f"pgbench reserve_hot @{c}")
    _compare(r, "reserve_spread_expiring", clients[-1], "reserve_spread", clients[-1])
    _compare(r, "lifecycle", 8, "reserve_spread", 8)
    for name in sizes:
        _compare(r, f"reserve_history_{name}", 8, "reserve_history_h0", 8)
    naive = f"naive_{naive_rows // 1000}k"
    _compare(r, naive, 8, "naive_small", 8)
    results, targets = list(r.values()), _targets(r, naive)
    meta = dict(version=version, fsync=fsync, synchronous_commit=sync, seconds=seconds, quick=quick,
                rounds=rounds, round_seconds=round_seconds)
    table = markdown(results, targets, meta)
    print(table)
    (out / "bench.md").write_text(table)
    plot(results, out / "bench.png")
    return results


def run_ab(out: Path, base_sql: Path, quick: bool = False) -> list[tuple[str, list[float]]]:
    """What a change costs reserve_credit: the same workloads against a
    database built from another sql/ tree (A, e.g. the last release from git)
    and one built from this installation's (B), on one cluster, alternating
    A, B, A, B in short rounds. Reports B/A per round pair, their median and range."""
    rounds, seconds = (1, 1) if quick else (5, 5)
    work = Path(tempfile.mkdtemp(prefix="pgcredit-bench-"))
    pairs: list[tuple[str, list[float]]] = []
    try:
        with embedded.throwaway(settings=tuple(SETTINGS)) as server:
            dsns = {}
            for side, root in (("a", base_sql), ("b", None)):
                dsns[side] = server.ensure_database(f"bench_{side}")
                migrate(dsns[side], root)
                client = CreditClient(dsns[side])
                for line in ["hot", *[f"s{i}" for i in range(1000)]]:
                    client.open_line("bench", line, Decimal(10) ** 15)
                client.close()
                with psycopg.connect(dsns[side], autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE")
            workloads = [("reserve_hot", 8), ("reserve_spread", 32), ("reserve_spread", 8)]
            benches = {}
            for side, dsn in dsns.items():
                (work / side).mkdir()
                benches[side] = Bench(server, dsn, seconds, work / side)
                benches[side].total = len(workloads) * rounds
            for name, clients in workloads:
                ratios = []
                for _ in range(rounds):
                    tps = {side: benches[side].pgbench(f"{name}_{side}", SCRIPTS[name], clients).tps
                           for side in ("a", "b")}
                    for bench in benches.values():
                        bench.rounds.clear()  # each pair is a ratio of its own
                    ratios.append(tps["b"] / tps["a"])
                pairs.append((f"{name} @{clients}", ratios))
            version = psycopg.connect(dsns["b"]).execute("SHOW server_version").fetchone()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [f"A: {base_sql}, B: this installation's sql/. PostgreSQL {version}, the bench's settings; "
             f"A and B alternate in {rounds} rounds of {seconds} s each; {os.cpu_count()} CPUs", "",
             "| workload | B/A per round | median | range |", "|---|---|---|---|"]
    for what, ratios in pairs:
        lines.append(f"| {what} | {', '.join(f'{r:.3f}' for r in ratios)} | {statistics.median(ratios):.3f} | "
                     f"{min(ratios):.3f}–{max(ratios):.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ab.md").write_text(text)
    return pairs


def markdown(results: list[Result], targets: list[Target], meta: dict) -> str:
    lines = [f"PostgreSQL {meta['version']}, fsync={meta['fsync']}, synchronous_commit={meta['synchronous_commit']}, "
             f"{meta['seconds']} s per run; bare/reserve pairs alternate in {meta['rounds']} rounds of "
             f"{meta['round_seconds']} s, median round; {os.cpu_count()} CPUs"
             + (" (--quick: sizes and durations reduced, figures not comparable)" if meta["quick"] else ""),
             "",
             "| workload | clients | tps | p50 ms | p99 ms | compared with | ratio |",
             "|---|---|---|---|---|---|---|"]
    for x in results:
        ratio = f"{x.ratio:.2f}" if x.ratio is not None else ""
        lines.append(f"| {x.name} | {x.clients} | {x.tps:,.0f} | {x.p50_ms:.2f} | {x.p99_ms:.2f} | "
                     f"{x.baseline} | {ratio} |")
    lines += ["", "| target | ratio | wanted | |", "|---|---|---|---|"]
    lines += [f"| {t.what} | {t.ratio:.3f} | ≥ {t.minimum:g} | {'met' if t.met else 'MISSED'} |" for t in targets]
    return "\n".join(lines) + "\n"


def plot(results: list[Result], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no plot; pip install 'pgcredit[bench]')", file=sys.stderr)
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for name, style in [("bare_hot", "k--"), ("reserve_hot", "C0-o"), ("python_reserve_hot", "C2-^"),
                        ("bare_spread", "k:"), ("reserve_spread", "C1-s")]:
        pts = sorted((x.clients, x.tps) for x in results if x.name == name)
        if pts:
            left.plot([p[0] for p in pts], [p[1] for p in pts], style, label=name)
    left.set(xscale="log", xlabel="clients", ylabel="transactions / s", title="Reservations vs the bare UPDATE")
    left.set_xticks(sorted({x.clients for x in results}), labels=[str(c) for c in sorted({x.clients for x in results})])
    left.legend()
    bars = [x for x in results if x.name.startswith(("reserve_history", "naive", "lifecycle"))]
    right.barh([x.name for x in bars], [x.tps for x in bars], color="C0")
    right.set(xscale="log", xlabel="transactions / s (8 clients, log scale)", title="History and the source design")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
