"""The `pgcredit` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import psycopg

from . import embedded
from .client import CreditClient
from .errors import CreditDatabaseError
from .migrate import migrate, pending


def _dsn(args: argparse.Namespace) -> str:
    if getattr(args, "dsn", None):
        return args.dsn
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    server = embedded.persistent()
    print(f"(embedded server in {server.base})", file=sys.stderr)
    return server.ensure_database("pgcredit")


def cmd_migrate(args) -> int:
    report = migrate(_dsn(args))
    for mid in report.applied:
        print(f"applied {mid}")
    if not report.applied:
        print("no migration pending")
    print(f"loaded {report.function_files} function files")
    return 0


def cmd_demo(args) -> int:
    from .demo import run

    if getattr(args, "dsn", None) or os.environ.get("DATABASE_URL"):
        return run(_dsn(args))
    print("starting a throwaway PostgreSQL ...", flush=True)
    with embedded.throwaway() as server:
        return run(server.ensure_database("pgcredit"))


def cmd_status(args) -> int:
    dsn = _dsn(args)
    with psycopg.connect(dsn) as conn:
        print(f"server:    {conn.execute('SELECT version()').fetchone()[0]}")
        print(f"database:  {conn.info.dbname}")
        todo = pending(dsn)
        print(f"migrations pending: {', '.join(todo) if todo else 'none'}")
        if conn.execute("SELECT to_regclass('credit.line') IS NULL").fetchone()[0]:
            print("schema credit is not installed: run `pgcredit migrate`")
            return 1
        cur = conn.execute("SELECT * FROM credit.monitor_totals")
        for column, value in zip([d.name for d in cur.description], cur.fetchone()):
            print(f"{column + ':':<24}{value}")
        rows = conn.execute("SELECT code, refusals FROM credit.monitor_refusals ORDER BY code").fetchall()
        print("refusals in the last hour: " + (", ".join(f"{c} {n}" for c, n in rows) or "none"))
    return 0


def cmd_reconcile(args) -> int:
    client = CreditClient(_dsn(args))
    findings = client.reconcile()
    for f in findings:
        print(f"{f.check_name}\t{f.wholesaler_id}/{f.retailer_id}\texpected {f.expected}"
              f"\tactual {f.actual}\t{f.detail}")
    print(f"{len(findings)} finding(s)" if findings else "healthy: no findings")
    return 1 if findings else 0


def cmd_expire(args) -> int:
    client = CreditClient(_dsn(args))
    total = 0
    while True:
        done = client.expire_reservations(args.batch)
        total += done
        if done == 0:
            break
        print(f"expired {total} so far ...", flush=True)
    print(f"expired {total} hold(s)")
    return 0


def cmd_bench(args) -> int:
    from .bench import run

    run(args.out, quick=args.quick, only=args.only)  # reports targets; a noisy ratio is not a failure
    return 0


def cmd_stop(args) -> int:
    server = embedded.user_server()
    if server.initialized and server.running():
        server.stop()
        print(f"stopped the embedded server in {server.base}")
    else:
        print("the embedded server is not running")
    return 0


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not erase a --dsn given before it.
    common.add_argument("--dsn", default=argparse.SUPPRESS, help="libpq conninfo or URI (default: $DATABASE_URL, "
                                      "else a per-user embedded server)")
    parser = argparse.ArgumentParser(prog="pgcredit", parents=[common],
                                     description="Trade credit for B2B ordering, enforced inside PostgreSQL.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", parents=[common], help="apply migrations and reload every function"
                   ).set_defaults(func=cmd_migrate)
    sub.add_parser("demo", parents=[common], help="play the spec's scenarios and a 32-way race "
                   "(on a throwaway server when no DSN is given)").set_defaults(func=cmd_demo)
    sub.add_parser("status", parents=[common], help="server, migrations and book totals"
                   ).set_defaults(func=cmd_status)
    sub.add_parser("reconcile", parents=[common], help="prove totals and links; exit 1 on findings"
                   ).set_defaults(func=cmd_reconcile)
    expire = sub.add_parser("expire", parents=[common], help="mark expired holds, in batches")
    expire.add_argument("--batch", type=int, default=1000)
    expire.set_defaults(func=cmd_expire)
    bench = sub.add_parser("bench", help="benchmark on a cluster of its own (fsync on) against the bare "
                                         "UPDATE and the source design; writes OUT/bench.md and OUT/bench.png")
    bench.add_argument("--quick", action="store_true", help="seconds instead of minutes; figures not comparable")
    bench.add_argument("--out", type=Path, default=Path("bench-results"))
    bench.add_argument("--only", metavar="PATTERNS", help="comma-separated workload names or fnmatch patterns "
                                                          "(e.g. 'bare_hot,reserve_hot'): a shorter look")
    bench.set_defaults(func=cmd_bench)
    sub.add_parser("stop", help="stop the per-user embedded server").set_defaults(func=cmd_stop)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CreditDatabaseError as exc:
        if exc.sqlstate in ("3F000", "42883", "42P01"):
            print(f"pgcredit: {exc}\nIs the schema installed? Run `pgcredit migrate`.", file=sys.stderr)
        else:
            print(f"pgcredit: {exc}", file=sys.stderr)
        return 2
    except (psycopg.Error, RuntimeError) as exc:
        print(f"pgcredit: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
