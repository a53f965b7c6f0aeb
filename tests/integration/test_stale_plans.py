"""A migration may give a result type a trailing column (SPEC: result types may
gain trailing columns). A connection that prepared `SELECT * FROM credit.f(...)`
before it then meets "cached plan must not change result type": PostgreSQL
refuses the prepared statement before running it. The client prepares it again
and retries (the same key, though nothing ran), so applications keep working
while `pgcredit migrate` runs (tests/ops/test_upgrade.py does it under traffic)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from pgcredit import AsyncCreditClient, CreditClient, Retry

PREPARED = 6  # psycopg prepares a statement on its 5th execution


def gain_a_column(dsn: str) -> None:
    """What a migration does when a result gains a column: get_available is
    replaced, in one transaction, by a function whose result has one more."""
    with psycopg.connect(dsn) as owner:
        columns = ", ".join(f'{name} {kind}' for name, kind in owner.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'credit.available_result'::regclass AND attnum > 0 AND NOT attisdropped"
            " ORDER BY attnum"))
        owner.execute("CREATE SCHEMA v1")
        owner.execute("ALTER FUNCTION credit.get_available(text, text) SET SCHEMA v1")
        owner.execute(f"""
            CREATE FUNCTION credit.get_available(wholesaler_id text, retailer_id text)
            RETURNS TABLE ({columns}, note text)
            LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
            AS 'SELECT a.*, NULL::text FROM v1.get_available(wholesaler_id, retailer_id) a'""")
        owner.execute("GRANT EXECUTE ON FUNCTION credit.get_available(text, text) TO credit_app")


def test_the_change_does_break_a_prepared_statement(dsn):
    """Self-check: without the client's recovery the same change fails a call."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT * FROM credit.open_line('w', 'r', 100)")
        for _ in range(PREPARED):
            conn.execute("SELECT * FROM credit.get_available(%s, %s)", ("w", "r"))
        gain_a_column(dsn)
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="cached plan must not change result type"):
            conn.execute("SELECT * FROM credit.get_available(%s, %s)", ("w", "r"))


@pytest.mark.parametrize("source", ["conninfo", "connection in autocommit", "connection", "pool"])
def test_the_client_prepares_again_and_the_call_succeeds(dsn, source):
    retried = []
    retry = Retry(on_retry=lambda name, attempt, exc: retried.append(exc.sqlstate))
    if source == "conninfo":
        src = dsn
    elif source == "pool":
        from psycopg_pool import ConnectionPool
        src = ConnectionPool(dsn, min_size=1, max_size=1, open=True)
    else:
        src = psycopg.connect(dsn, autocommit=source.endswith("autocommit"))
    client = CreditClient(src, retry=retry)
    try:
        client.open_line("w", "r", 100)
        for _ in range(PREPARED):
            assert client.get_available("w", "r").available == 100
        gain_a_column(dsn)
        for _ in range(PREPARED):
            assert client.get_available("w", "r").available == 100
        assert retried == ["0A000"]  # once: the statement was prepared again
    finally:
        client.close()
        if not isinstance(src, str):
            src.close()


def test_the_async_client_prepares_again_and_the_call_succeeds(dsn):
    async def run():
        client = AsyncCreditClient(dsn)
        try:
            await client.open_line("w", "r", 100)
            for _ in range(PREPARED):
                await client.get_available("w", "r")
            gain_a_column(dsn)
            for _ in range(PREPARED):
                assert (await client.get_available("w", "r")).available == 100
        finally:
            await client.close()
    asyncio.run(run())
