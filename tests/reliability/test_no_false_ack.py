"""Issue 20, item 1: no false acknowledgement. With a synchronous standby, a
call whose wait for the standby is cancelled is committed on the primary and
answered with success plus a WARNING (SQLSTATE 01000, "canceling wait for
synchronous replication ..."). The client must turn that answer into
OutcomeUnknown, naming the call and its key; the caller's retry with the same
key, once a server answers, replays it or books it once.

Two set-ups. A primary with a real standby (support.failover), stopped with
SIGSTOP, then resumed, then a failover: the claim end to end, and the
self-check that a client ignoring the warning reports `ok` for a reservation
the promoted standby does not have. And, for the cheap cases (every kind of
connection the clients take, every replay), a server whose
synchronous_standby_names names a standby that never connects: every commit
waits exactly as it does for a stopped standby, with nothing to set up.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from decimal import Decimal as D

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool, ConnectionPool

import pgcredit as pc
from pgcredit import AsyncCreditClient, CreditClient, OutcomeUnknown, Retry, migrate
from support.failover import LOCAL, pair, wait_for
from support.mutation import install_variant
from support.reliability import HOT, W, report

# A long harness: the default run takes it on the first server version only (conftest.py).
pytestmark = pytest.mark.first_version_by_default

R = "r"


class IgnoresWarnings(CreditClient):
    """The self-check's client: the notice handling disabled, as the client was
    before issue 20 (and as a caller that only looks at the result row is)."""

    @staticmethod
    def _watch(conn):
        return contextlib.nullcontext([])


def _sync_waiters(conninfo: str, pid: int | None = None) -> list[int]:
    with psycopg.connect(conninfo, autocommit=True) as c:
        return [r[0] for r in c.execute("SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' "
                                        "AND pid = coalesce(%s::integer, pid)", [pid])]


@contextlib.contextmanager
def cancelled_in_its_wait(conninfo: str, how=None, after: float = 0.0, pid: int | None = None,
                          required: bool = True):
    """Cancels, from another thread, the backend that waits for a synchronous
    standby (the one of `pid`, or the first found), once it does and `after`
    seconds more: with pg_cancel_backend, or with how(pid) (a client-side
    cancel). Yields a list that gets how long it let the call wait; with
    `required`, fails if no call waited."""
    done = threading.Event()
    waited: list[float] = []
    failed: list[BaseException] = []

    def run():
        try:
            pids: list[int] = []
            while not done.is_set() and not pids:
                pids = _sync_waiters(conninfo, pid)
                done.wait(0.01)
            if not pids:
                return  # the block ended without waiting for the standby
            start = time.monotonic()
            done.wait(after)
            waited.append(time.monotonic() - start)
            if how is None:
                with psycopg.connect(conninfo, autocommit=True) as c:
                    c.execute("SELECT pg_cancel_backend(%s)", [pids[0]])
            else:
                how(pids[0])
        except BaseException as exc:  # the call would wait for ever: end it, and say why
            failed.append(exc)
            with psycopg.connect(conninfo, autocommit=True) as c:
                c.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")

    t = threading.Thread(target=run)
    t.start()
    try:
        yield waited
    finally:
        done.set()
        t.join()
        if failed:
            raise failed[0]
    if required:
        assert waited, "no call waited for the standby"


# -- A server whose synchronous standby never connects ------------------------------------

@pytest.fixture
def line(unreplicated, request):
    """A line of the test's own on the unreplicated server: (wholesaler, local client)."""
    dsn, local = unreplicated
    w = f"w-{request.node.name}"[:60]
    client = CreditClient(local)
    client.open_line(w, R, 1000)
    yield w, client
    client.close()


def _check_unknown(err, function, key_name, key):
    assert "OutcomeUnknown" in pc.__all__
    assert isinstance(err, pc.CreditError) and not isinstance(err, pc.CreditBusy)
    assert (err.function, err.key_name, err.key) == (function, key_name, key)
    assert f"{key_name}={key!r}" in str(err) and "01000" in err.notice and function in str(err)


SOURCES = ["conninfo", "connection", "connection-in-transaction-mode", "pool", "pool-autocommit"]


@pytest.mark.parametrize("source", SOURCES)
def test_an_unconfirmed_commit_is_outcome_unknown(unreplicated, line, source):
    """Every kind of source the client takes: the warning comes with the
    statement (autocommit) or with the COMMIT the client sends (otherwise);
    either way the call raises OutcomeUnknown, and a later call with the same
    key replays what the first committed."""
    dsn, _ = unreplicated
    w, local = line
    with contextlib.ExitStack() as stack:
        src = {
            "conninfo": lambda: dsn,
            "connection": lambda: stack.enter_context(psycopg.connect(dsn, autocommit=True)),
            "connection-in-transaction-mode": lambda: stack.enter_context(psycopg.connect(dsn)),
            "pool": lambda: stack.enter_context(ConnectionPool(dsn, min_size=1, open=True)),
            "pool-autocommit": lambda: stack.enter_context(
                ConnectionPool(dsn, min_size=1, open=True, kwargs={"autocommit": True})),
        }[source]()
        client = CreditClient(src)
        with cancelled_in_its_wait(dsn), pytest.raises(OutcomeUnknown) as err:
            client.reserve_credit(w, R, "o1", D(10))
        _check_unknown(err.value, "reserve_credit", "order_ref", "o1")
        client.close()
    again = local.reserve_credit(w, R, "o1", D(10))
    assert (again.code, again.replayed) == ("ok", True)
    assert local.get_available(w, R).reserved == 10


@pytest.mark.parametrize("source", ["conninfo", "pool"])
def test_the_async_client_too(unreplicated, line, source):
    dsn, _ = unreplicated
    w, local = line

    async def main():
        if source == "pool":
            async with AsyncConnectionPool(dsn, min_size=1) as pool:
                return await AsyncCreditClient(pool).record_payment(w, R, "p1", D(5))
        client = AsyncCreditClient(dsn)
        try:
            return await client.record_payment(w, R, "p1", D(5))
        finally:
            await client.close()

    with cancelled_in_its_wait(dsn), pytest.raises(OutcomeUnknown) as err:
        asyncio.run(main())
    _check_unknown(err.value, "record_payment", "payment_ref", "p1")
    assert local.record_payment(w, R, "p1", D(5)).replayed is True


def test_a_client_side_cancel_and_a_statement_timeout(unreplicated, line):
    """A statement_timeout does not end the wait (PostgreSQL does not count the
    commit); the application's own cancel does, and is reported like any other."""
    dsn, _ = unreplicated
    w, local = line
    with psycopg.connect(dsn, autocommit=True, options="-c statement_timeout=100ms") as conn:
        client = CreditClient(conn)
        with cancelled_in_its_wait(dsn, how=lambda pid: conn.cancel_safe(), after=0.5) as waited, \
                pytest.raises(OutcomeUnknown) as err:
            client.convert_to_debit_batch([(w, R, "o1"), (w, R, "o2")])
    assert waited[0] >= 0.5  # still waiting five timeouts later
    _check_unknown(err.value, "convert_to_debit_batch", "order_refs", ["o1", "o2"])
    assert [x.code for x in local.convert_to_debit_batch([(w, R, "o1"), (w, R, "o2")])] == \
        ["reservation_not_found"] * 2  # nothing to convert: only the outcome was unknown, not the answer


def test_metrics_count_it_as_outcome_unknown(unreplicated, line):
    prometheus_client = pytest.importorskip("prometheus_client")
    dsn, _ = unreplicated
    w, _ = line
    registry = prometheus_client.CollectorRegistry()
    client = CreditClient(dsn, metrics=registry)
    with cancelled_in_its_wait(dsn), pytest.raises(OutcomeUnknown):
        client.adjust_balance(w, R, "a1", D(-1), "goodwill")
    client.close()
    assert registry.get_sample_value("pgcredit_client_call_duration_seconds_count",
                                     {"function": "adjust_balance", "code": "outcome_unknown"}) == 1


# Every call that books something, and its replay.
REPLAYS = [
    ("open_line", (R, D(1000))),
    ("reserve_credit", (R, "o1", D(10))),
    ("release_reservation", (R, "o2")),
    ("convert_to_debit", (R, "o3")),
    ("record_payment", (R, "p1", D(5))),
    ("reverse_debit", (R, "o3", "v1", D(1), "returned")),
    ("adjust_balance", (R, "a1", D(1), "fee")),
    ("amend_reservation", (R, "o4", D(12), "m1")),
]
BATCH_REPLAYS = [
    ("reserve_credit_batch", [(R, "b1", D(1))]),
    ("convert_to_debit_batch", [(R, "o3")]),
    ("record_payment_batch", [(R, "q1", D(1))]),
]


def replays_answered_without_the_standby(dsn: str, local: CreditClient, w: str) -> list[str]:
    """The calls whose replay answered before the standby confirmed anything:
    a replay's answer is a false acknowledgement too if it comes without
    waiting (the first call's commit may be on the primary only)."""
    for name, args in [("open_line", (R, D(1000))), ("reserve_credit", (R, "o2", D(10))),
                       ("reserve_credit", (R, "o3", D(10))), ("reserve_credit", (R, "o4", D(10))), *REPLAYS]:
        getattr(local, name)(w, *args)
    for name, items in BATCH_REPLAYS:
        getattr(local, name)([(w, *item) for item in items])
    calls = [(name, lambda c, n=name, a=args: getattr(c, n)(w, *a)) for name, args in REPLAYS]
    calls += [(name, lambda c, n=name, i=items: getattr(c, n)([(w, *item) for item in i]))
              for name, items in BATCH_REPLAYS]
    answered = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        client = CreditClient(conn)
        for name, call in calls:
            with cancelled_in_its_wait(dsn, pid=conn.info.backend_pid, required=False) as waited:
                try:
                    call(client)
                    answered.append(name)
                except OutcomeUnknown:
                    assert waited
    return answered


def test_every_replay_waits_for_the_standby(unreplicated, line):
    """A retry after OutcomeUnknown is durable only if its own commit waits for
    the standby (then the first call's commit, earlier in the WAL, is there
    too): every replay must write to the WAL (a row lock does)."""
    dsn, _ = unreplicated
    w, local = line
    w = w + "-replays"
    assert replays_answered_without_the_standby(dsn, local, w) == []


def test_a_replay_that_writes_nothing_is_caught(unreplicated, line):
    """Self-check: open_line's replay without its row lock (as before issue
    20) answers at once, and the check above says so."""
    dsn, local_dsn = unreplicated
    w, local = line
    with psycopg.connect(local_dsn, autocommit=True) as conn:
        install_variant(conn, "open_line.sql", ("\n       FOR KEY SHARE;", ";"))
        try:
            assert replays_answered_without_the_standby(dsn, local, w + "-broken") == ["open_line"]
        finally:
            install_variant(conn, "open_line.sql")  # the module's server is shared: the shipped one again


def test_no_function_raises_a_warning(conn):
    """The client reads any WARNING 01000 that comes with an answer as an
    unconfirmed commit (the text is translated by servers with another
    lc_messages): no pgcredit function may raise one of its own."""
    query = ("SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace::regnamespace::text "
             "LIKE 'credit%%' AND p.prosrc ~* 'raise\\s+warning'")
    assert conn.execute(query).fetchall() == []
    conn.execute("CREATE FUNCTION credit._warns() RETURNS void LANGUAGE plpgsql AS "
                 "$$BEGIN RAISE WARNING 'look'; END$$")
    assert len(conn.execute(query).fetchall()) == 1  # the check can fail


# -- A real standby: stopped, resumed, and a failover ---------------------------------------

@pytest.fixture
def replicated(cluster):
    """A primary and a synchronous standby of the test's own (support.failover)."""
    with pair(cluster.bin) as p:
        p.make_synchronous("on")
        yield p


def _reserved(conninfo: str, line: str) -> D:
    with psycopg.connect(conninfo) as c:
        return c.execute("SELECT reserved FROM credit.line WHERE wholesaler_id = %s AND retailer_id = %s",
                         [W, line]).fetchone()[0]


def _holds(conninfo: str, refs: list[str]) -> dict[str, int]:
    """How many holds each order_ref has (on any line of W)."""
    with psycopg.connect(conninfo) as c:
        rows = dict(c.execute("SELECT r.order_ref, count(*) FROM credit.reservation r JOIN credit.line l "
                              "ON l.id = r.line_id WHERE l.wholesaler_id = %s AND r.order_ref = ANY(%s) "
                              "GROUP BY r.order_ref", [W, refs]).fetchall())
    return {ref: rows.get(ref, 0) for ref in refs}


def _fill_the_pipe(p) -> None:
    """WAL the stopped standby cannot take in: the primary's send and the
    standby's receive buffers fill, and what is committed after this stays on
    the primary (checked below with the walsender's sent_lsn)."""
    with psycopg.connect(p.primary.conninfo(p.DB), autocommit=True, options=LOCAL) as c:
        c.execute("CREATE TABLE filler AS SELECT repeat('x', 1000) AS x FROM generate_series(1, 40000)")


def test_a_stopped_standby_gives_outcome_unknown_and_the_retry_books_once(cluster, replicated):
    """The standby is stopped (SIGSTOP); calls wait for it and are cancelled
    (pg_cancel_backend, and a client-side cancel): OutcomeUnknown, a retry
    while it is still stopped waits too. Once it resumes, the retry with the
    same key replays. Stopped again, more calls are cancelled, the primary is
    killed and the standby promoted: each retry through the multi-host
    conninfo books its call exactly once, whether its first commit reached
    the standby or not. Self-check: a client that ignores the warning answers
    ok for each; one of those reservations is missing after the failover."""
    p = replicated
    primary = p.primary.conninfo(p.DB)
    amount = D(100)
    client = CreditClient(p.dsn(), retry=Retry(attempts=40, base_delay=0.05, max_delay=0.5))
    ignoring = IgnoresWarnings(p.dsn())

    # 1. Stopped, then resumed.
    p.pause_standby()
    with cancelled_in_its_wait(primary), pytest.raises(OutcomeUnknown) as err:
        client.reserve_credit(W, HOT, "a1", amount)
    _check_unknown(err.value, "reserve_credit", "order_ref", "a1")
    with cancelled_in_its_wait(primary), pytest.raises(OutcomeUnknown):
        client.reserve_credit(W, HOT, "a1", amount)  # the replay waits for the standby too
    with cancelled_in_its_wait(primary):
        ignored = ignoring.reserve_credit(W, HOT, "a1-ignored", amount)
    assert (ignored.code, ignored.replayed) == ("ok", False)  # the false acknowledgement
    p.resume_standby()
    again = client.reserve_credit(W, HOT, "a1", amount)
    assert (again.code, again.replayed) == ("ok", True)
    assert _holds(primary, ["a1"]) == {"a1": 1} and _reserved(primary, HOT) == 2 * amount

    # 2. Stopped again, then a failover.
    with psycopg.connect(primary, autocommit=True) as conn:
        wait_for("the standby to be synchronous again", lambda: conn.execute(
            "SELECT sync_state = 'sync' FROM pg_stat_replication").fetchone()[0])
        p.pause_standby()
        with cancelled_in_its_wait(primary), pytest.raises(OutcomeUnknown):
            client.reserve_credit(W, HOT, "f1", amount)  # its commit is sent to the stopped standby
        _fill_the_pipe(p)
        with psycopg.connect(p.dsn(), autocommit=True) as own:
            pay = CreditClient(own, retry=client.retry)
            with cancelled_in_its_wait(primary, how=lambda pid: own.cancel_safe()), \
                    pytest.raises(OutcomeUnknown) as err:
                pay.record_payment(W, HOT, "f2", D(1))
        _check_unknown(err.value, "record_payment", "payment_ref", "f2")
        with cancelled_in_its_wait(primary):
            assert ignoring.reserve_credit(W, HOT, "f3-ignored", amount).code == "ok"  # false acknowledgement
        sent, now = conn.execute("SELECT sent_lsn, pg_current_wal_lsn() FROM pg_stat_replication, "
                                 "pg_current_wal_lsn()").fetchone()
        assert sent < now  # what came after the filler never left the primary
    ignoring.close()
    p.kill_primary("immediate")
    p.resume_standby()
    p.promote()

    new = p.standby.conninfo(p.DB)
    lost_ok = _holds(new, ["f3-ignored"]) == {"f3-ignored": 0}
    before = _holds(new, ["a1", "a1-ignored", "f1"])
    f1 = client.reserve_credit(W, HOT, "f1", amount)
    f2 = client.record_payment(W, HOT, "f2", D(1))
    assert f1.code == f2.code == "ok" and f2.replayed is False  # f2 never reached the standby: booked now
    assert _holds(new, ["a1", "a1-ignored", "f1"]) == {"a1": 1, "a1-ignored": 1, "f1": 1}
    with psycopg.connect(new) as c:
        assert c.execute("SELECT count(*) FROM credit.ledger_entry WHERE ref = 'f2'").fetchone()[0] == 1
        assert c.execute("SELECT * FROM credit.reconcile()").fetchall() == []
    assert _reserved(new, HOT) == 3 * amount  # a1, a1-ignored, f1: each once
    client.close()
    report(f"No false acknowledgement pg{cluster.major}: a stopped standby, calls cancelled in their wait: "
           f"OutcomeUnknown (pg_cancel_backend and client-side cancel), the replay waited too; resumed: "
           f"replayed. Failover: f1's first commit {'had' if before['f1'] else 'had not'} reached the standby "
           f"(retry answered replayed={f1.replayed}), f2's had not (booked once by the retry); the ignoring "
           f"client's ok for f3 {'was lost' if lost_ok else 'survived'} after the failover")
    # The self-check: the client that ignores the warning acknowledged a reservation the new primary lacks.
    assert lost_ok
