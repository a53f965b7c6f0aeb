"""Issue 20, item 4: `pgcredit migrate` from the previous release to this one
while applications call the API.

The previous release is installed by its own code (its client package and sql/,
taken from git), a varied book is written through its client, and 8 threads of
that same client (the applications, not upgraded yet) call the API as an
application login while today's `pgcredit migrate` runs. Whatever migrations
are pending between that release and now are applied under the traffic, and
every function and view file is reloaded. No call may fail; the book must
reconcile, the traffic's lines must hold what its answers imply, and every
read of the book must answer as before, through the old client and the new.

The self-check: the same upgrade with one more migration that drops a function
and creates it again (instead of CREATE OR REPLACE): calls made while it is
gone, or without its grants, fail, and the harness must see them."""

from __future__ import annotations

import importlib.util
import io
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from pgcredit import CreditClient
from pgcredit.migrate import (
    OlderTransactionsOpen, apply_migrations, load_functions, migrate, pending, run_bridges, sql_dir,
)
from support.book import (
    TRAFFIC_W, Recorder, Traffic, expect_book, figures, model, open_traffic_lines, orders_of, reads, varied_book,
)
from support.db import APP_USER
from support.reliability import report

REPO = Path(__file__).resolve().parents[2]
# The release applications run before this one: v1.1.1 (OPERATIONS.md,
# "Upgrading"). The newest v* tag older than HEAD is used; a clone without
# tags finds the same commit here.
LAST_RECORDED_RELEASE = "d4f2a224de64ac5b797bc8b3dce7b018badc1b0b"
WORKERS = 8
LINES = [f"u{i}" for i in range(6)]


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True)


def previous_release() -> tuple[str, str]:
    """(revision, why it is the previous release)."""
    head = git("rev-parse", "HEAD").stdout.decode().strip()
    tags = git("tag", "--list", "v*", "--merged", "HEAD", "--sort=-v:refname").stdout.decode().split()
    for tag in tags:
        if git("rev-parse", f"{tag}^{{commit}}").stdout.decode().strip() != head:
            return tag, f"the newest release tag, {tag}"
    return LAST_RECORDED_RELEASE, f"no release tag: the last recorded release, main at {LAST_RECORDED_RELEASE}"


@dataclass
class Release:
    rev: str
    why: str
    root: Path  # its client/pgcredit and sql/
    module: object  # its pgcredit package, imported under another name


@pytest.fixture(scope="session")
def release(tmp_path_factory) -> Release:
    rev, why = previous_release()
    if git("cat-file", "-e", f"{rev}^{{commit}}").returncode:
        pytest.skip(f"{rev} ({why}) is not in this clone's history (a shallow clone?): fetch it to test the upgrade")
    root = tmp_path_factory.mktemp("release")
    tar = git("archive", rev, "client/pgcredit", "sql")
    assert tar.returncode == 0, tar.stderr
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
        archive.extractall(root, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    # Its sql_dir() finds ../../sql from client/pgcredit, as in a source tree.
    name = f"pgcredit_release_{rev.replace('.', '_').replace('-', '_')}"
    package = root / "client" / "pgcredit"
    spec = importlib.util.spec_from_file_location(name, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    assert Path(module.migrate.__globals__["sql_dir"]()).resolve() == (root / "sql").resolve()
    return Release(rev, why, root, module)


@dataclass
class Upgrade:
    applied: list[str]
    migrate_seconds: float
    traffic: Traffic
    calls_during: int
    retries: int
    before: dict
    after_old: dict
    after_new: dict
    figures: dict
    findings: list
    pending_after: list[str]


def upgrade_under_traffic(cluster, release: Release, root: Path | None = None, long_run: bool = False) -> Upgrade:
    """The previous release installed by its own migrate, a varied book and
    traffic through its client as an application login, and this release's
    migrate (the `pgcredit migrate` command, or migrate() with `root` for the
    self-check's sql/) in the middle of the traffic."""
    old = release.module
    db = cluster.create_database(template=None)
    try:
        dsn, app = cluster.dsn(db), cluster.dsn(db, user=APP_USER)
        old.migrate(dsn)
        todo = pending(dsn, root)
        rec = Recorder()
        old_client = old.CreditClient(app)
        book = varied_book(rec, old_client)
        assert expect_book(rec) == []
        open_traffic_lines(old_client, LINES)
        with psycopg.connect(dsn, autocommit=True) as conn:
            before = reads(old_client, book, orders_of(rec), conn)

        retries = []
        retry = old.Retry(on_retry=lambda name, attempt, exc: retries.append((name, exc)))
        clients = [old.CreditClient(app, retry=retry) for _ in range(WORKERS)]
        traffic = Traffic(clients, LINES).start()
        try:
            time.sleep(5 if long_run else 1)
            started = time.time()
            if root is None:
                done = subprocess.run([sys.executable, "-m", "pgcredit", "migrate", "--dsn", dsn],
                                      capture_output=True, text=True)
                assert done.returncode == 0, done.stderr
                applied = [line.removeprefix("applied ") for line in done.stdout.splitlines()
                           if line.startswith("applied ")]
            else:
                applied = migrate(dsn, root).applied
            ended = time.time()
            time.sleep(5 if long_run else 1)
        finally:
            traffic.stop()
            for c in clients:
                c.close()
        assert applied == todo

        new_client = CreditClient(app)
        with psycopg.connect(dsn, autocommit=True) as conn:
            after_old = reads(old_client, book, orders_of(rec), conn)
            after_new = reads(new_client, book, orders_of(rec), conn)
            found = figures(conn, [(TRAFFIC_W, r) for r in LINES])
            findings = conn.execute("SELECT * FROM credit.reconcile()").fetchall()
        old_client.close()
        new_client.close()
        return Upgrade(applied, ended - started, traffic,
                       sum(1 for c in traffic.rec.calls if c.sent < ended and c.acked > started), len(retries),
                       before, after_old, after_new, found, findings, pending(dsn, root))
    finally:
        cluster.drop_database(db)


def same_fields(before, after):
    """after, cut down to what before has: a newer client's results may carry more columns."""
    if isinstance(before, dict) and isinstance(after, dict):
        return {k: same_fields(v, after.get(k)) for k, v in before.items()}
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [same_fields(b, a) for b, a in zip(before, after)]
    return after


def released_as_before(before, after):
    """after, with what SPEC v1.2 changed in a v1.1 book taken back: v1.1 left
    an expired hold's released_amount NULL; since 0007 it is what the expiry
    released. Nothing else may differ."""
    if isinstance(before, dict) and isinstance(after, dict):
        if after.get("status") == "expired" and before.get("released_amount", 0) is None \
                and after.get("released_amount") is not None:
            assert after["released_amount"] == after["amount"] - (after.get("converted_amount") or 0), after
            after = {**after, "released_amount": None}
        return {k: released_as_before(before.get(k), v) for k, v in after.items()}
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [released_as_before(b, a) for b, a in zip(before, after)]
    return after


def test_migrate_from_the_previous_release_under_traffic(cluster, release, long_run):
    u = upgrade_under_traffic(cluster, release, long_run=long_run)
    calls = u.traffic.rec.calls
    report(f"Upgrade under traffic pg{cluster.major} from {release.rev} ({release.why}): migrations applied "
           f"{u.applied or 'none (none pending)'}, every function and view reloaded, in {u.migrate_seconds:.2f} s; "
           f"{len(calls)} calls by {WORKERS} threads of the old client, {u.calls_during} of them during the "
           f"migrate; client retries {u.retries}; failed calls {len(u.traffic.errors)}")
    assert u.traffic.errors == []
    assert u.calls_during >= WORKERS  # the traffic ran through the migration
    assert u.figures == model(calls)
    assert u.findings == [] and u.before["reconcile"] == []
    assert released_as_before(u.before, u.after_old) == u.before
    assert released_as_before(u.before, same_fields(u.before, u.after_new)) == u.before
    assert u.pending_after == []


def test_self_check_a_migration_that_drops_and_recreates_a_function_fails_calls(cluster, release, tmp_path):
    """The migration drops reserve_credit, and its function file, reloaded after
    the migrations, creates it again: how a function's signature or result type
    gets changed (0003 did it to set_credit_limit's old signature). Migrations
    and the reload are separate transactions, so in between the function does
    not exist and calls to it fail; the harness must see that."""
    root = tmp_path / "sql"
    shutil.copytree(sql_dir(), root)
    number = len(list((root / "migrations").glob("*.sql"))) + 1
    (root / "migrations" / f"{number:04d}_recreate_reserve_credit.sql").write_text(
        "DROP FUNCTION credit.reserve_credit(text, text, text, numeric, interval);\n")
    u = upgrade_under_traffic(cluster, release, root)
    failed = [e for e in u.traffic.errors if e.startswith(("reserve_credit ", "reserve_credit_batch "))]
    report(f"Upgrade self-check pg{cluster.major}, a migration that drops reserve_credit for its file to create "
           f"again: {len(u.traffic.errors)} failed calls ({len(failed)} reservations) during a migrate of "
           f"{u.migrate_seconds:.2f} s, e.g. {failed[0].split('}: ', 1)[-1][:110] if failed else 'none'}")
    assert failed
    assert u.pending_after == []  # the migration itself went through: only the callers saw the gap


def test_this_client_reads_results_that_gained_a_trailing_column(dsn):
    """Later releases add columns at the end of result types; the migration
    that adds one reaches the database before the applications are upgraded. This client
    leaves such a column out. (74e0042's client fails the call with a
    TypeError: applications on it must move to 1.1.1 or later before a
    migration adds a column.)"""
    client = CreditClient(dsn)
    try:
        client.open_line("w", "r", 100)
        client.reserve_credit("w", "r", "o1", 40)
        with psycopg.connect(dsn, autocommit=True) as conn:
            # get_available fills its result column by column: the new one is NULL until its file sets it.
            conn.execute("ALTER TYPE credit.available_result ADD ATTRIBUTE note text")
            columns = [d.name for d in conn.execute("SELECT * FROM credit.get_available('w', 'r')").description]
            assert columns[-1] == "note"
        assert client.get_available("w", "r").reserved == 40
    finally:
        client.close()


@pytest.fixture
def old_database(cluster, release):
    """A database at the previous release, with two holds on two lines."""
    db = cluster.create_database(template=None)
    dsn = cluster.dsn(db)
    release.module.migrate(dsn)
    client = release.module.CreditClient(dsn)
    for retailer in ("r1", "r2"):
        client.open_line("w", retailer, 1000)
        client.reserve_credit("w", retailer, f"o-{retailer}", 100)
    client.close()
    yield dsn
    cluster.drop_database(db)


def waiting_on_a_lock(dsn: str, query_like: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not conn.execute("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                               "AND query LIKE %s)", [query_like]).fetchone()[0]:
            assert time.monotonic() < deadline, "the call never waited for the lock"
            time.sleep(0.02)


@pytest.mark.parametrize("bridged", [True, False], ids=["bridged", "self_check_unbridged"])
def test_a_batch_of_the_release_before_running_across_the_reload(old_database, release, bridged):
    """What made test_migrate_from_the_previous_release_under_traffic fail now
    and then, made to happen every time: a v1.1 convert_to_debit_batch that
    started before the reload committed (its body compiled) and reaches its
    items after. It reads convert_to_debit's rows as `s.*`, and v1.2's result
    has one column more. With 0007's bridge (migrate runs it before the
    migrations) the body names its columns and the batch converts both holds;
    without it the batch fails."""
    dsn, root = old_database, sql_dir()
    todo = pending(dsn)
    assert "0007_add_order_changes" in todo
    if bridged:
        assert run_bridges(dsn, root, todo) == ["0007_add_order_changes"]
    apply_migrations(dsn, root / "migrations")
    outcome = {}

    def batch():
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET credit.lock_timeout = '30s'")  # the function's own 2 s would end the wait
            try:
                outcome["rows"] = conn.execute(
                    "SELECT item, code, status, debited_amount FROM credit.convert_to_debit_batch("
                    "ARRAY['w', 'w'], ARRAY['r1', 'r2'], ARRAY['o-r1', 'o-r2'])").fetchall()
            except psycopg.Error as exc:
                outcome["error"] = exc

    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT FROM credit.line WHERE retailer_id = 'r1' FOR UPDATE")
        worker = threading.Thread(target=batch)
        worker.start()
        waiting_on_a_lock(dsn, "%convert_to_debit_batch%")
        load_functions(dsn, root)  # commits while the batch waits for line r1, its v1.1 body compiled
    worker.join(30)
    assert not worker.is_alive()
    if bridged:
        assert outcome == {"rows": [(1, "ok", "converted", 100), (2, "ok", "converted", 100)]}
        with psycopg.connect(dsn) as conn:
            debits = conn.execute("SELECT count(*) FROM credit.ledger_entry WHERE entry_type = 'DEBIT'").fetchone()
            assert debits == (2,)
            assert conn.execute("SELECT * FROM credit.reconcile()").fetchall() == []
    else:
        assert "structure of query does not match function result type" in str(outcome.get("error")), outcome


def test_migrate_waits_for_the_transactions_begun_before_its_bridge(old_database):
    """A transaction open when the bridge commits may be running the release
    before's bodies: migrate applies nothing until it has ended, and says
    which sessions it waited for if they outlast its patience."""
    dsn = old_database
    todo = pending(dsn)
    with psycopg.connect(dsn) as older:
        older.execute("SELECT 1")
        pid = older.info.backend_pid
        with pytest.raises(OlderTransactionsOpen, match=f"pid {pid} \\(idle in transaction"):
            migrate(dsn, bridge_wait=0.5)
        assert pending(dsn) == todo  # the bridge ran; no migration did
        done = {}
        worker = threading.Thread(target=lambda: done.setdefault("report", migrate(dsn, bridge_wait=30)))
        worker.start()
        time.sleep(1)
        assert worker.is_alive() and pending(dsn) == todo
        older.rollback()
    worker.join(30)
    assert done["report"].bridged == ["0007_add_order_changes"] and done["report"].applied == todo
