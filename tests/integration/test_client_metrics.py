"""Client telemetry (pgcredit.metrics): latency by function and code, retries by
SQLSTATE, CreditBusy; and nothing at all without metrics=."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from pgcredit import AsyncCreditClient, CreditBusy, CreditClient, InsufficientCredit, InvalidInput, LineNotFound, Retry
from pgcredit.metrics import ClientMetrics

DURATION = "pgcredit_client_call_duration_seconds"


def calls(registry, function: str, code: str) -> float:
    return registry.get_sample_value(f"{DURATION}_count", {"function": function, "code": code}) or 0


def retries(registry, function: str, sqlstate: str) -> float:
    return registry.get_sample_value("pgcredit_client_retries_total",
                                     {"function": function, "sqlstate": sqlstate}) or 0


def busy(registry, function: str) -> float:
    return registry.get_sample_value("pgcredit_client_busy_total", {"function": function}) or 0


def test_calls_are_counted_and_timed_by_function_and_code(dsn):
    registry = CollectorRegistry()
    client = CreditClient(dsn, metrics=registry)
    try:
        client.open_line("w", "r", 100)
        client.reserve_credit("w", "r", "o1", 80)
        with pytest.raises(InsufficientCredit):
            client.reserve_credit("w", "r", "o2", 50)
        assert client.reserve_credit("w", "r", "o3", 50, check=False).code == "insufficient_credit"
        with pytest.raises(InvalidInput):
            client.reserve_credit("w", "r", "o4", -1)
        with pytest.raises(LineNotFound):
            client.get_available("w", "nobody")
        assert client.expire_reservations() == 0
        assert client.reconcile() == []
    finally:
        client.close()
    assert calls(registry, "open_line", "ok") == 1
    assert calls(registry, "reserve_credit", "ok") == 1
    assert calls(registry, "reserve_credit", "insufficient_credit") == 2
    assert calls(registry, "reserve_credit", "invalid_input") == 1
    assert calls(registry, "get_available", "line_not_found") == 1
    assert calls(registry, "expire_reservations", "ok") == 1
    assert calls(registry, "reconcile", "ok") == 1
    total = registry.get_sample_value(f"{DURATION}_sum", {"function": "reserve_credit", "code": "ok"})
    assert 0 < total < 5
    # The 0.1 s bucket exists: the lock-acquisition alert (ops/prometheus) reads it.
    assert registry.get_sample_value(f"{DURATION}_bucket",
                                     {"function": "open_line", "code": "ok", "le": "0.1"}) is not None
    assert busy(registry, "reserve_credit") == 0


@pytest.fixture
def slow_locks(cluster, dbname):
    """Lock waits in this database end after 50 ms (55P03), so a held line fails fast."""
    with cluster.admin() as admin:
        admin.execute(f"ALTER DATABASE \"{dbname}\" SET credit.lock_timeout = '50ms'")


def test_retries_by_sqlstate_and_busy(dsn, slow_locks):
    registry = CollectorRegistry()
    client = CreditClient(dsn, retry=Retry(attempts=3, base_delay=0.001, max_delay=0.005), metrics=registry)
    holder = psycopg.connect(dsn)
    try:
        client.open_line("w", "r", 100)
        holder.execute("SELECT * FROM credit.reserve_credit('w', 'r', 'held', 1)")  # the line is locked
        with pytest.raises(CreditBusy):
            client.reserve_credit("w", "r", "o1", 10)
        assert retries(registry, "reserve_credit", "55P03") == 2
        assert busy(registry, "reserve_credit") == 1
        assert calls(registry, "reserve_credit", "busy") == 1
        waited = registry.get_sample_value(f"{DURATION}_sum", {"function": "reserve_credit", "code": "busy"})
        assert waited >= 3 * 0.05  # three lock waits of 50 ms: the caller's whole wait is reported

        # The holder commits while the client is retrying: retried, then ok with the same key.
        patient = CreditClient(dsn, retry=Retry(attempts=50, base_delay=0.01, max_delay=0.02), metrics=registry)
        timer = threading.Timer(0.3, holder.commit)
        timer.start()
        try:
            assert patient.reserve_credit("w", "r", "o1", 10).code == "ok"
        finally:
            timer.join()
            patient.close()
        assert retries(registry, "reserve_credit", "55P03") >= 3
        assert calls(registry, "reserve_credit", "ok") == 1
        assert busy(registry, "reserve_credit") == 1
    finally:
        holder.close()
        client.close()


def test_async_client_reports_the_same(dsn, slow_locks):
    registry = CollectorRegistry()

    async def main():
        client = AsyncCreditClient(dsn, retry=Retry(attempts=2, base_delay=0.001, max_delay=0.002),
                                   metrics=ClientMetrics(registry))
        try:
            await client.open_line("w", "r", 100)
            assert (await client.reserve_credit("w", "r", "o1", 500, check=False)).code == "insufficient_credit"
            async with await psycopg.AsyncConnection.connect(dsn) as holder:
                await holder.execute("SELECT * FROM credit.reserve_credit('w', 'r', 'held', 1)")
                with pytest.raises(CreditBusy):
                    await client.reserve_credit("w", "r", "o2", 10)
                await holder.rollback()
        finally:
            await client.close()

    asyncio.run(main())
    assert calls(registry, "open_line", "ok") == 1
    assert calls(registry, "reserve_credit", "insufficient_credit") == 1
    assert calls(registry, "reserve_credit", "busy") == 1
    assert retries(registry, "reserve_credit", "55P03") == 1
    assert busy(registry, "reserve_credit") == 1


def test_clients_share_one_registry(dsn):
    registry = CollectorRegistry()
    a, b = CreditClient(dsn, metrics=registry), CreditClient(dsn, metrics=registry)
    try:
        assert a.metrics is b.metrics
        a.open_line("w", "r", 1)
        b.get_available("w", "r")
    finally:
        a.close()
        b.close()
    assert calls(registry, "open_line", "ok") == 1 and calls(registry, "get_available", "ok") == 1
    with pytest.raises(TypeError, match="metrics must be"):
        CreditClient(dsn, metrics="yes please")


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_no_metrics_no_cost(dsn):
    """Without metrics= neither pgcredit.metrics nor prometheus_client is imported."""
    done = _python(f"""
import sys
from pgcredit import CreditClient
c = CreditClient({dsn!r})
c.open_line("w", "r", 1)
assert c.metrics is None
assert "prometheus_client" not in sys.modules and "pgcredit.metrics" not in sys.modules, sorted(sys.modules)
print("clean")
""")
    assert done.returncode == 0 and done.stdout.strip() == "clean", done.stderr


def test_without_prometheus_client_installed(dsn):
    """As if the extra were not installed: the client works, and asking for
    metrics says which extra to install."""
    done = _python(f"""
import sys
sys.modules["prometheus_client"] = None  # import prometheus_client now fails
from pgcredit import CreditClient
c = CreditClient({dsn!r})
print(c.open_line("w", "r", 1).code)
try:
    CreditClient({dsn!r}, metrics=True)
except ImportError as exc:
    print(exc)
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["ok", "client metrics need prometheus_client: pip install 'pgcredit[metrics]'"]
