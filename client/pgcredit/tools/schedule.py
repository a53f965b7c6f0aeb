"""`pgcredit schedule`: pgcredit's periodic jobs, installed in pg_cron.

- expire: ``SELECT credit.expire_reservations()`` every minute. Expired holds
  stop counting at once anyway; the sweep marks them (and keeps
  ``pgcredit_holds_oldest_awaiting_sweep_seconds`` low).
- reconcile: ``SELECT credit.record_reconcile()`` every 10 minutes, for the
  metrics and `pgcredit status` (reconcile() reads whole tables: not at scrape time).
- events: ``SELECT credit.prune_events('30 days')`` every minute: the event
  feed keeps 30 days (``--keep-events``), and its horizon advances at least
  once a minute when nobody reads it on the primary (for standby readers,
  and so that ``monitor_events`` reports what waits, not what nobody read).

pg_cron runs jobs from the one database named by ``cron.database_name``; the
jobs of another database are scheduled there with ``cron.schedule_in_database``.
Job names carry the database's name, so several pgcredit databases in one
cluster keep their own jobs, and running this again updates them in place.
Jobs run as the user who scheduled them.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.conninfo import make_conninfo

EXPIRE_EVERY = "* * * * *"
RECONCILE_EVERY = "*/10 * * * *"
EVENTS_EVERY = "* * * * *"
KEEP_EVENTS = "30 days"


@dataclass(frozen=True)
class Job:
    name: str
    schedule: str
    command: str
    database: str


class ScheduleError(RuntimeError):
    """pg_cron is missing, not loaded, or may not be used by this user; the
    message says what to do."""


def jobs_for(database: str, keep_events: str = KEEP_EVENTS) -> list[Job]:
    """keep_events: an interval as PostgreSQL writes it (no quotes in it)."""
    return [Job(f"pgcredit-expire:{database}", EXPIRE_EVERY, "SELECT credit.expire_reservations()", database),
            Job(f"pgcredit-reconcile:{database}", RECONCILE_EVERY, "SELECT credit.record_reconcile()", database),
            Job(f"pgcredit-events:{database}", EVENTS_EVERY, f"SELECT credit.prune_events('{keep_events}')",
                database)]


def _pg_cron_database(conn: psycopg.Connection) -> str:
    """The database pg_cron runs from, or ScheduleError saying why there is none."""
    major = conn.info.server_version // 10000
    if conn.execute("SELECT to_regclass('credit.line') IS NULL").fetchone()[0]:
        raise ScheduleError("schema credit is not installed in this database: run `pgcredit migrate` first")
    if not conn.execute("SELECT FROM pg_available_extensions WHERE name = 'pg_cron'").fetchall():
        raise ScheduleError(
            f"pg_cron is not installed on this PostgreSQL {major} server, so nothing was scheduled. "
            f"Install it (Debian/Ubuntu: apt-get install postgresql-{major}-cron), or run "
            "`pgcredit expire` every minute from the system's cron instead (OPERATIONS.md).")
    preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0]
    if "pg_cron" not in [lib.strip().strip('"') for lib in preload.split(",")]:
        raise ScheduleError(
            "pg_cron is installed but not loaded, so nothing was scheduled. In postgresql.conf set "
            "shared_preload_libraries = 'pg_cron' and cron.database_name = "
            f"'{conn.info.dbname}' (or keep your cron database), then restart PostgreSQL.")
    return conn.execute("SELECT current_setting('cron.database_name')").fetchone()[0]


def schedule(dsn: str, keep_events: str = KEEP_EVENTS) -> list[Job]:
    """Installs (or updates) the jobs of the database dsn names; returns them.
    keep_events: how long the event feed keeps events (an interval)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        database = conn.info.dbname
        cron_db = _pg_cron_database(conn)
        try:  # as the server writes it: the job's command quotes it
            keep = conn.execute("SELECT %s::interval::text AS keep, %s::interval >= interval '0' AS ok",
                                [keep_events, keep_events]).fetchone()
        except psycopg.errors.DataError as exc:
            raise ScheduleError(f"--keep-events must be an interval such as '30 days': {exc}") from exc
        if not keep[1]:
            raise ScheduleError(f"--keep-events must not be negative, got {keep_events}")
    jobs = jobs_for(database, keep[0])
    cron_dsn = make_conninfo(dsn, dbname=cron_db) if cron_db != database else dsn
    try:
        with psycopg.connect(cron_dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
            for job in jobs:
                if cron_db == database:
                    conn.execute("SELECT cron.schedule(%s, %s, %s)", [job.name, job.schedule, job.command])
                else:
                    conn.execute("SELECT cron.schedule_in_database(%s, %s, %s, %s)",
                                 [job.name, job.schedule, job.command, job.database])
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ScheduleError(
            f"{exc.diag.message_primary}. pg_cron's set-up needs a superuser: as one, run "
            f"`pgcredit schedule` for this database, or in database {cron_db}: CREATE EXTENSION pg_cron; "
            "and the cron.schedule calls in OPERATIONS.md.") from exc
    return jobs
