"""`pgcredit schedule` with the real pg_cron (Debian postgresql-15-cron), on a
cluster of the test's own started with shared_preload_libraries = pg_cron; and
the clear refusal where pg_cron is missing or not loaded."""

from __future__ import annotations

import re
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from support.db import private_server
from pgcredit import migrate
from pgcredit.tools.cli import main


def _pg_cron_available(cluster) -> bool:
    with cluster.admin() as conn:
        return bool(conn.execute("SELECT FROM pg_available_extensions WHERE name = 'pg_cron'").fetchall())


def test_schedule_says_clearly_when_pg_cron_is_not_there(cluster, dsn, capsys):
    """The session's cluster has no pg_cron loaded (and PostgreSQL 18 from the
    wheel has no pg_cron at all): nothing is scheduled, and the message says why."""
    assert main(["schedule", "--dsn", dsn]) == 1
    err = capsys.readouterr().err
    if _pg_cron_available(cluster):
        assert "pg_cron is installed but not loaded, so nothing was scheduled" in err
        assert "shared_preload_libraries = 'pg_cron'" in err
    else:
        assert f"pg_cron is not installed on this PostgreSQL {cluster.major} server" in err
        assert f"apt-get install postgresql-{cluster.major}-cron" in err and "pgcredit expire" in err


def test_schedule_needs_the_schema(cluster, capsys):
    empty = cluster.create_database(template=None)
    try:
        assert main(["schedule", "--dsn", cluster.dsn(empty)]) == 1
        assert "run `pgcredit migrate` first" in capsys.readouterr().err
    finally:
        cluster.drop_database(empty)


def _documented_sql() -> str:
    text = (Path(__file__).resolve().parents[2] / "OPERATIONS.md").read_text()
    return re.search(r"The same by hand, in pg_cron's database:\n\n```sql\n(.*?)```", text, re.S).group(1)


def _jobs(conn) -> list[dict]:
    return conn.execute("SELECT jobname, schedule, command, database, username, active FROM cron.job "
                        "ORDER BY jobname").fetchall()


def test_schedule_installs_jobs_that_pg_cron_runs(cluster, capsys):
    if not _pg_cron_available(cluster):
        pytest.skip(f"pg_cron is not installed for PostgreSQL {cluster.major}: no postgresql-{cluster.major}-cron "
                    "(./dev test installs Debian's for the system's PostgreSQL as root with apt-get)")
    settings = ("fsync=off", "shared_preload_libraries=pg_cron", "cron.database_name=postgres",
                # Jobs run in background workers: no TCP or password set-up for pg_cron's own connections.
                "cron.use_background_workers=on", "max_worker_processes=16")
    with private_server(cluster, settings) as server:
        shop = server.ensure_database("shop")
        here = server.conninfo("postgres")  # pgcredit in pg_cron's own database too: cron.schedule there
        migrate(shop)
        migrate(here)
        for dsn in (shop, here, shop):  # a second run updates the jobs in place
            assert main(["schedule", "--dsn", dsn]) == 0
        out = capsys.readouterr().out
        assert main(["schedule", "--dsn", shop, "--keep-events", "forever"]) == 1
        assert "--keep-events must be an interval" in capsys.readouterr().err
        assert "scheduled pgcredit-expire:shop: '* * * * *' SELECT credit.expire_reservations() " \
               "(in database shop)" in out
        assert "scheduled pgcredit-reconcile:postgres: '*/10 * * * *'" in out

        with psycopg.connect(here, autocommit=True, row_factory=dict_row) as cron:
            # OPERATIONS.md's SQL for doing it by hand makes the same jobs (it updates them in place).
            before = _jobs(cron)
            cron.execute(_documented_sql())
            assert _jobs(cron) == before
            assert _jobs(cron) == [
                {"jobname": f"pgcredit-{kind}:{db}", "schedule": when, "command": command, "database": db,
                 "username": "postgres", "active": True}
                for kind, when, command in (("events", "* * * * *", "SELECT credit.prune_events('30 days')"),
                                            ("expire", "* * * * *", "SELECT credit.expire_reservations()"),
                                            ("reconcile", "*/10 * * * *", "SELECT credit.record_reconcile()"))
                for db in ("postgres", "shop")]
            # The reconcile job's command works (it runs at the next tenth minute: not waited for).
            with psycopg.connect(shop, autocommit=True) as conn:
                conn.execute((_jobs(cron)[5]["command"]))
                assert conn.execute("SELECT findings FROM credit.monitor_reconcile").fetchone() == (0,)

            # A hold that expires now, in each database; the next minute's run sweeps it.
            expiring = {}
            for name, dsn in (("shop", shop), ("postgres", here)):
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("SELECT credit.open_line('w', 'r', 100)")
                    conn.execute("SELECT credit.reserve_credit('w', 'r', 'soon', 10, '1 second')")
                    expiring[name] = conn.execute("SELECT expires_at FROM credit.reservation").fetchone()[0]
            # pg_cron 1.4 (Debian 12) schedules by the minute; seconds arrived in 1.5. Up to a minute's wait.
            deadline = time.monotonic() + 90
            holds = {}
            while len(holds) < 2 and time.monotonic() < deadline:
                for name, dsn in (("shop", shop), ("postgres", here)):
                    with psycopg.connect(dsn, row_factory=dict_row) as conn:
                        hold = conn.execute("SELECT status, expired_at FROM credit.reservation").fetchone()
                    if hold["status"] == "expired":
                        holds[name] = hold
                time.sleep(1)
            assert set(holds) == {"shop", "postgres"}, "pg_cron did not run the expiry jobs within 90 s"
            # The event job advanced the feed's horizon in the same minutes: nothing waits for long,
            # with no reader at all.
            with psycopg.connect(shop, autocommit=True) as conn:
                moved = time.monotonic() + 70
                while (conn.execute("SELECT count(*) FROM credit.event").fetchone()[0] < 3
                       or conn.execute("SELECT events_waiting FROM credit.monitor_events").fetchone()[0] > 0) \
                        and time.monotonic() < moved:
                    time.sleep(1)
                assert conn.execute("SELECT events_waiting FROM credit.monitor_events").fetchone()[0] == 0
                assert conn.execute("SELECT kind FROM credit.event ORDER BY event_id").fetchall() == [
                    ("line_opened",), ("hold_reserved",), ("hold_expired",)]
            for name in holds:
                # Marked by a run of that job, not by anything else: the first run that ended after the
                # hold was marked. Its end_time is written after its transaction commits, and with
                # background workers its start_time is written once the launcher sees the worker
                # running, which on a busy machine can be after the worker's transaction began: the
                # run may start up to 20 s after the mark (jobs run a minute apart, so that is one run).
                finished = time.monotonic() + 30
                while True:
                    run = cron.execute("""
                        SELECT d.status, d.start_time <= %(at)s::timestamptz + interval '20 seconds' AS started_by_then
                          FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                         WHERE j.jobname = %(job)s AND d.end_time >= %(at)s
                         ORDER BY d.end_time LIMIT 1""",
                                       {"job": f"pgcredit-expire:{name}", "at": holds[name]["expired_at"]}).fetchall()
                    if run or time.monotonic() > finished:
                        break
                    time.sleep(0.5)
                assert run == [{"status": "succeeded", "started_by_then": True}], \
                    (run, cron.execute("SELECT d.* FROM cron.job_run_details d JOIN cron.job j USING (jobid) "
                                       "WHERE j.jobname = %s ORDER BY runid", [f"pgcredit-expire:{name}"]).fetchall(),
                     holds[name])
                assert holds[name]["expired_at"] >= expiring[name]
