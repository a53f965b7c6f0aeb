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
TEMP = "SELECT credit.set_credit_limit('b', 'plain', 2e15, 'season', now() + interval '1 day')"

CASES = {
    "reserve_credit, one line": ("PREPARE s(text) AS SELECT code FROM credit.reserve_credit('b', 'plain', $1, 1)",
                                 "EXECUTE s('{tag}{i}')"),
    "reserve_credit, 1,000 lines": (
        "PREPARE s(text, text) AS SELECT code FROM credit.reserve_credit('b', $1, $2, 1)",
        "EXECUTE s('spread{mod}', '{tag}{i}')"),
    "reserve_credit, overdue policy, nothing late": (
        "PREPARE s(text) AS SELECT code FROM credit.reserve_credit('b', 'policy', $1, 1)", "EXECUTE s('{tag}{i}')"),
    "get_available": ("PREPARE s AS SELECT * FROM credit.get_available('b', 'plain')", "EXECUTE s"),
    "bare UPDATE": ("PREPARE s AS UPDATE bare SET used = used + 1 WHERE id = 0 AND used + 1 <= lim", "EXECUTE s"),
}


def instructions(server: embedded.Server, work: Path, prepare: str, execute: str, n: int, tag: str) -> int:
    lines = [prepare] + [execute.format(i=i, mod=i % 1000, tag=tag) for i in range(n)]
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
    if "ERROR" in done.stdout:
        raise RuntimeError(done.stdout[-2000:])
    summary = re.search(r"^summary: (\d+)", out.read_text(), re.M)
    return int(summary.group(1))


def measure(sql: Path, calls: int, cases: list[str]) -> dict[str, float]:
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
            conn.execute("CREATE TABLE bare (id int PRIMARY KEY, used numeric NOT NULL, lim numeric NOT NULL)")
            conn.execute("INSERT INTO bare VALUES (0, 0, 1e15)")
            conn.execute("VACUUM ANALYZE")
    finally:
        server.stop()
    result = {}
    for k, name in enumerate(cases):
        prepare, execute = CASES[name]
        small = instructions(server, work, prepare, execute, calls, f"c{k}a")
        large = instructions(server, work, prepare, execute, 3 * calls, f"c{k}b")
        result[name] = (large - small) / (2 * calls)
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
        cells = [f"{t[name]:,.0f}" + (f" ({t[name] / first[name] - 1:+.1%})" if t is not first else "")
                 for t in table.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
