"""`pgcredit bench --partitions`: what the proxy hop costs a call, and the
throughput of 1, 2 and 4 partitions behind a proxy against a single server.

Everything runs on one cluster of its own (the bench's durable settings), so
the partitions share this machine's CPUs and disk: the runs measure the
proxy's overhead, not what N partitions on N machines give (PARTITIONING.md
has the model for that). Runs being compared alternate in short rounds and
each keeps its median round, as in `pgcredit bench`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import psycopg

from . import embedded
from .bench import QUICK_TRANSACTIONS, SCRIPTS, SETTINGS, Bench, Result
from ..client import CreditClient
from ..migrate import migrate
from ..partitions import migrate_partitions

# The proxy keeps a connection to each partition per client: room for 16
# clients x 4 partitions, and the clients themselves.
PARTITION_SETTINGS = [s for s in SETTINGS if not s.startswith("max_connections")] + ["max_connections=200"]
LINES = 1000
PARTITION_COUNTS = (1, 2, 4)
THROUGHPUT_CLIENTS = 16


def run_partitions(out: Path, quick: bool = False) -> list[Result]:
    rounds, seconds = (1, 1) if quick else (3, 5)
    # --quick shows that it runs: through 4 partitions only.
    counts = (4,) if quick else PARTITION_COUNTS
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pgcredit-bench-"))
    benches: dict[str, Bench] = {}
    try:
        with embedded.throwaway(settings=tuple(PARTITION_SETTINGS)) as server:
            with psycopg.connect(server.conninfo(), autocommit=True) as conn:
                if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'plproxy'").fetchone():
                    raise RuntimeError(f"PL/Proxy is not installed for the server in {server.bin} "
                                       "(Debian: apt-get install postgresql-15-plproxy)")
                version = conn.execute("SHOW server_version").fetchone()[0]
            dsns = {"direct": server.ensure_database("direct")}
            migrate(dsns["direct"])
            for n in counts:
                dsns[f"proxy{n}"] = server.ensure_database(f"proxy{n}")
                migrate_partitions(dsns[f"proxy{n}"], [server.ensure_database(f"p{n}_{i}") for i in range(n)])
            for name, dsn in dsns.items():
                client = CreditClient(dsn)
                for i in range(LINES):
                    client.open_line("bench", f"s{i}", Decimal(10) ** 15)
                client.close()
                (work / name).mkdir()
                benches[name] = Bench(server, seconds, work / name, QUICK_TRANSACTIONS if quick else None)
                benches[name].use("tuned", dsn, "prepared")
            with psycopg.connect(server.conninfo(), autocommit=True) as conn:
                for name in [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname ~ '^(direct|p)'")]:
                    with psycopg.connect(server.conninfo(name), autocommit=True) as db:
                        db.execute("VACUUM ANALYZE")

            # One client: the cost of the hop per call, for a read (no commit
            # to wait for) and a reservation. Then throughput with many clients.
            plan = []
            for _ in range(rounds):
                for workload, script in (("get_available", SCRIPTS["get_available_spread"]),
                                         ("reserve_credit", SCRIPTS["reserve_spread"])):
                    for name in ("direct", "proxy4"):
                        plan.append((name, workload, script, 1))
            for _ in range(rounds):
                for name in ("direct", *[f"proxy{n}" for n in counts]):
                    plan.append((name, "reserve_credit", SCRIPTS["reserve_spread"], THROUGHPUT_CLIENTS))
            for i, (name, workload, script, clients) in enumerate(plan, 1):
                bench = benches[name]
                bench.step, bench.total = i - 1, len(plan)
                bench.pgbench(f"{workload} {name}", script, clients)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results = [r for b in benches.values() for r in b.results.values()]
    text = report(results, version, rounds, seconds, quick)
    print(text)
    (out / "partitions.md").write_text(text)
    return results


def report(results: list[Result], version: str, rounds: int, seconds: int, quick: bool) -> str:
    by = {(r.name, r.clients): r for r in results}
    lines = [f"PostgreSQL {version}, the bench's durable settings, one cluster for the proxy and every partition, "
             f"{os.cpu_count()} CPUs; runs alternate in {rounds} rounds of {seconds} s, median round"
             + (f" (--quick: {QUICK_TRANSACTIONS} transactions per client instead, figures not comparable)"
                if quick else ""), "",
             "| workload | deployment | clients | tps | p50 ms | p99 ms |", "|---|---|---|---|---|---|"]
    for r in results:
        workload, deployment = r.name.split(" ")
        lines.append(f"| {workload} | {deployment} | {r.clients} | {r.tps:,.0f} | {r.p50_ms:.3f} | {r.p99_ms:.3f} |")
    lines += ["", "| measure | value |", "|---|---|"]
    for workload in ("get_available", "reserve_credit"):
        d, p = by.get((f"{workload} direct", 1)), by.get((f"{workload} proxy4", 1))
        if d and p:
            lines.append(f"| the proxy hop, {workload}, 1 client: p50 proxy - p50 direct | "
                         f"{p.p50_ms - d.p50_ms:+.3f} ms ({p.p50_ms / d.p50_ms:.2f}x) |")
    direct = by.get(("reserve_credit direct", THROUGHPUT_CLIENTS))
    for n in PARTITION_COUNTS:
        p = by.get((f"reserve_credit proxy{n}", THROUGHPUT_CLIENTS))
        if direct and p and direct.tps:
            lines.append(f"| reserve_credit, {THROUGHPUT_CLIENTS} clients: {n} partition(s) on this machine "
                         f"/ single server | {p.tps / direct.tps:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_partitions(Path(sys.argv[1] if len(sys.argv) > 1 else "bench-results"), quick="--quick" in sys.argv)
