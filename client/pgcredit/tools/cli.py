"""The `pgcredit` command."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import sys
from pathlib import Path

import psycopg

from . import embedded
from ..client import CreditClient
from ..errors import CreditDatabaseError
from ..migrate import WrongEncoding, migrate


def _dsn(args: argparse.Namespace) -> str:
    if getattr(args, "dsn", None):
        return args.dsn
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    server = embedded.persistent()
    print(f"(embedded server in {server.base})", file=sys.stderr)
    return server.ensure_database("pgcredit")


def cmd_migrate(args) -> int:
    if args.partitions:
        from ..partitions import migrate_partitions

        dsns = [d.strip() for d in args.partitions.split(",") if d.strip()]
        migrate_partitions(_dsn(args), dsns, progress=print)
        return 0
    report = migrate(_dsn(args))
    for mid in report.bridged:
        print(f"bridged {mid} (and waited for the transactions begun before)")
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


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more, got {text}")
    return value


def cmd_status(args) -> int:
    import time

    from .status import render

    dsn = _dsn(args)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if args.watch is None:
            text, code = render(conn, dsn)
            print(text, end="")
            return code
        try:
            while True:
                text, code = render(conn, dsn)
                # Home and clear, then the screen: `watch`-style, without the flicker of `clear`.
                print("\x1b[H\x1b[2J" + text + f"\n(every {args.watch:g} s; Ctrl-C to stop)", end="", flush=True)
                time.sleep(args.watch)
        except KeyboardInterrupt:
            print()
            return 0


def cmd_reconcile(args) -> int:
    client = CreditClient(_dsn(args))
    findings = client.reconcile()
    for f in findings:
        print(f"{f.check_name}\t{f.wholesaler_id}/{f.retailer_id}\texpected {f.expected}"
              f"\tactual {f.actual}\t{f.detail}")
    print(f"{len(findings)} finding(s)" if findings else "healthy: no findings")
    return 1 if findings else 0


AGING_COLUMNS = ["wholesaler_id", "retailer_id", "currency", "not_due", "days_1_30", "days_31_60", "days_61_90",
                 "days_over_90", "unapplied_credit", "outstanding", "oldest_unpaid_due_date"]


def cmd_aging(args) -> int:
    rows = CreditClient(_dsn(args)).aging(args.as_of, args.wholesaler, args.retailer)
    table = [[("" if v is None else str(v)) for v in (getattr(r, c) for c in AGING_COLUMNS)] for r in rows]
    if args.csv:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(AGING_COLUMNS)
        out.writerows(table)
        return 0
    headers = ["wholesaler", "retailer", "cur", "not due", "1-30", "31-60", "61-90", "over 90", "unapplied",
               "outstanding", "oldest unpaid"]
    widths = [max([len(h)] + [len(row[i]) for row in table]) for i, h in enumerate(headers)]
    # Text left, money right: columns of figures line up on the decimal point.
    def fmt(cells):
        return "  ".join(c.ljust(w) if i < 3 or i == 10 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    print(f"aging as of {args.as_of or 'today'}")
    print(fmt(headers))
    print(fmt(["-" * w for w in widths]))
    for row in table:
        print(fmt(row))
    print(f"{len(table)} line(s) with anything unpaid or unapplied")
    return 0


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


def cmd_schedule(args) -> int:
    from .schedule import ScheduleError, schedule

    try:
        jobs = schedule(_dsn(args), args.keep_events)
    except ScheduleError as exc:
        print(f"pgcredit: {exc}", file=sys.stderr)
        return 1
    for job in jobs:
        print(f"scheduled {job.name}: '{job.schedule}' {job.command} (in database {job.database})")
    return 0


def cmd_bench(args) -> int:
    from .bench import run, run_ab, run_events

    if args.events:
        run_events(args.out, quick=args.quick, only=args.only, readers=args.readers)
        return 0
    if args.compare_sql:
        run_ab(args.out, args.compare_sql, quick=args.quick, only=args.only, readers=args.readers)
        return 0
    if args.partitions:
        from .bench_partitions import run_partitions

        run_partitions(args.out, quick=args.quick)
        return 0
    run(args.out, quick=args.quick, only=args.only)  # reports targets; a noisy ratio is not a failure
    return 0


def cmd_reference(args) -> int:
    from .reference import run

    dsn = getattr(args, "dsn", None) or os.environ.get("DATABASE_URL")
    if not dsn:
        print("(reading a throwaway server migrated with this installation's SQL)", file=sys.stderr)
    return run(dsn, args.out)


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
    mig = sub.add_parser("migrate", parents=[common], help="apply migrations and reload every function")
    mig.add_argument("--partitions", metavar="DSN1,DSN2,...", default=None,
                     help="a partitioned deployment (PARTITIONING.md): migrate these partition databases "
                          "(a power of two of them, key=value DSNs without commas, or URIs) and set up "
                          "--dsn as their PL/Proxy proxy")
    mig.set_defaults(func=cmd_migrate)
    sub.add_parser("demo", parents=[common], help="play the spec's scenarios and a 32-way race "
                   "(on a throwaway server when no DSN is given)").set_defaults(func=cmd_demo)
    status = sub.add_parser("status", parents=[common], help="one screen for operators: server, migrations, "
                            "totals, refusals, expiry, lock waits, reconcile, top lines by utilization")
    status.add_argument("--watch", type=_seconds, nargs="?", const=2.0, metavar="SECONDS",
                        help="refresh every SECONDS (default 2) until Ctrl-C")
    status.set_defaults(func=cmd_status)
    sub.add_parser("reconcile", parents=[common], help="prove totals and links; exit 1 on findings"
                   ).set_defaults(func=cmd_reconcile)
    aging = sub.add_parser("aging", parents=[common], help="receivables aging by days past due, as a table or CSV")
    aging.add_argument("--as-of", type=dt.date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                       help="as of the end of this day (default: today, the server's)")
    aging.add_argument("--wholesaler", default=None)
    aging.add_argument("--retailer", default=None)
    aging.add_argument("--csv", action="store_true", help="CSV with SQL column names, for spreadsheets")
    aging.set_defaults(func=cmd_aging)
    expire = sub.add_parser("expire", parents=[common], help="mark expired holds, in batches")
    expire.add_argument("--batch", type=int, default=1000)
    expire.set_defaults(func=cmd_expire)
    sched = sub.add_parser("schedule", parents=[common], help="install the expiry (every minute), reconcile "
                           "(every 10 minutes) and event feed (every minute) jobs in pg_cron, or say why not")
    sched.add_argument("--keep-events", default="30 days", metavar="INTERVAL",
                       help="how long the event feed keeps events (default: 30 days)")
    sched.set_defaults(func=cmd_schedule)
    bench = sub.add_parser("bench", help="benchmark on a cluster of its own (fsync on) against the bare "
                                         "UPDATE and the source design; writes OUT/bench.md and OUT/bench.png")
    bench.add_argument("--quick", action="store_true", help="seconds instead of minutes; figures not comparable")
    bench.add_argument("--out", type=Path, default=Path("bench-results"))
    bench.add_argument("--compare-sql", type=Path, metavar="SQL_DIR", default=None,
                       help="A/B instead: the single calls and the hot batch on a database built from SQL_DIR "
                            "(e.g. an earlier release: git archive REV sql | tar -x -C DIR) against this one, "
                            "interleaved (--only picks workloads)")
    bench.add_argument("--events", action="store_true",
                       help="instead: reserve_credit with the event feed against the same SQL without it "
                            "(hot@8, spread@32; tuned and default clusters; A/B interleaved) and how soon an "
                            "event is readable under that load, with the targets' verdicts (OUT/events.md)")
    bench.add_argument("--readers", type=_count, default=1, metavar="N",
                       help="with --events or --compare-sql: consumers following the feed (default 1; 0: none, "
                            "the writes' cost alone)")
    bench.add_argument("--partitions", action="store_true",
                       help="instead: the PL/Proxy hop's cost per call and throughput with 1, 2 and 4 partitions "
                            "against a single server (OUT/partitions.md; PARTITIONING.md)")
    bench.add_argument("--only", metavar="PATTERNS", help="comma-separated workload names or fnmatch patterns "
                                                          "(e.g. 'bare_hot,reserve_hot'): a shorter look; with "
                                                          "--compare-sql, CONFIG:WORKLOAD@CLIENTS patterns "
                                                          "(e.g. 'tuned:reserve_spread@32')")
    bench.set_defaults(func=cmd_bench)
    ref = sub.add_parser("reference", parents=[common], help="the SQL reference (every API function, result "
                         "type and view, from the catalog's comments and grants) as Markdown; without a DSN, "
                         "of this installation's SQL on a throwaway server")
    ref.add_argument("--out", default="-", metavar="PATH", help="write it here (default: standard output); "
                     "in a clone: --out docs/SQL-REFERENCE.md")
    ref.set_defaults(func=cmd_reference)
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
    except (psycopg.Error, RuntimeError, WrongEncoding) as exc:
        print(f"pgcredit: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
