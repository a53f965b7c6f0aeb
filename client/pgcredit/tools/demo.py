"""`pgcredit demo`: the four scenarios of the spec, step by step, then a
32-way race for one line's credit. Every expectation is checked; the exit
status is 1 if any fails."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from decimal import Decimal

import psycopg

from ..client import CreditClient
from ..migrate import migrate

RACERS = 32
RACE_LIMIT = Decimal(100_000)
RACE_AMOUNT = Decimal(5_000)


def _money(x) -> str:
    return "-" if x is None else f"{x:,.2f}"


class _Table:
    def __init__(self, client: CreditClient, wholesaler: str):
        self.client = client
        self.wholesaler = wholesaler
        self.failures = 0

    @staticmethod
    def title(text: str) -> None:
        print(f"\n{text}")
        print(f"  {'step':<44} {'code':<22} {'limit':>12} {'reserved':>12} {'outstanding':>12} {'available':>12}")

    def row(self, retailer: str, step: str, code: str) -> None:
        a = self.client.get_available(self.wholesaler, retailer)
        print(f"  {step:<44} {code:<22} {_money(a.credit_limit):>12} {_money(a.reserved):>12} "
              f"{_money(a.outstanding):>12} {_money(a.available):>12}", flush=True)

    def expect(self, what: str, ok: bool) -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
        self.failures += not ok


class RaceFailed(RuntimeError):
    """A racer got no result code: its call raised (the exceptions are chained)."""


def race(dsn: str, wholesaler: str, retailer: str, orders: list[tuple[str, Decimal]]) -> list[str]:
    """Reserves every (order_ref, amount) at the same moment, each from its own
    connection; returns the result codes in order. If any racer's call raised,
    raises RaceFailed naming them, with the first exception as its cause."""
    codes: list[str] = [""] * len(orders)
    failures: list[tuple[int, str, BaseException]] = []
    conns = [psycopg.connect(dsn, autocommit=True) for _ in orders]
    clients = [CreditClient(conn) for conn in conns]
    gate = threading.Barrier(len(orders))

    def go(i: int) -> None:
        ref, amount = orders[i]
        try:
            gate.wait(timeout=60)
            codes[i] = clients[i].reserve_credit(wholesaler, retailer, ref, amount, check=False).code
        except BaseException as exc:  # a thread's exception would be printed and lost
            failures.append((i, ref, exc))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(orders))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for conn in conns:
        conn.close()
    if failures:
        failures.sort(key=lambda f: f[0])
        raise RaceFailed(f"{len(failures)} of {len(orders)} racers failed: "
                         + "; ".join(f"{ref}: {exc!r}" for _, ref, exc in failures)) from failures[0][2]
    return codes


def run(dsn: str) -> int:
    print("migrating ...", flush=True)
    migrate(dsn)
    w = f"demo-{uuid.uuid4().hex[:8]}"
    c = CreditClient(dsn)
    t = _Table(c, w)

    t.title("Scenario 1: reserve two orders, deliver one, cancel the other")
    c.open_line(w, "s1", 100_000)
    t.row("s1", "open line, limit 100,000", "ok")
    t.row("s1", "reserve A 50,000", c.reserve_credit(w, "s1", "A", 50_000).code)
    t.row("s1", "reserve B 50,000", c.reserve_credit(w, "s1", "B", 50_000).code)
    conv = c.convert_to_debit(w, "s1", "A")
    t.row("s1", f"convert A (DEBIT due {conv.due_date})", conv.code)
    t.row("s1", "release B", c.release_reservation(w, "s1", "B", "cancelled").code)
    a = c.get_available(w, "s1")
    t.expect("available 50,000 and outstanding 50,000",
             (a.available, a.outstanding) == (Decimal(50_000), Decimal(50_000)))

    t.title("Scenario 2: a reservation larger than what is available")
    c.open_line(w, "s2", 100_000)
    c.reserve_credit(w, "s2", "D", 25_000)
    t.row("s2", "deliver D 25,000 (reserve + convert)", c.convert_to_debit(w, "s2", "D").code)
    t.row("s2", "reserve H 60,000", c.reserve_credit(w, "s2", "H", 60_000).code)
    refused = c.reserve_credit(w, "s2", "X", 20_000, check=False)
    t.row("s2", f"reserve X 20,000 (shortfall {_money(refused.shortfall)})", refused.code)
    t.expect("insufficient_credit with shortfall 5,000",
             (refused.code, refused.shortfall) == ("insufficient_credit", Decimal(5_000)))

    t.title("Scenario 3: a conversion interrupted, then retried")
    c.open_line(w, "s3", 100_000)
    t.row("s3", "reserve K 30,000", c.reserve_credit(w, "s3", "K", 30_000).code)
    victim = psycopg.connect(dsn)
    victim.execute("SELECT * FROM credit.convert_to_debit(%s, 's3', 'K')", [w])
    with psycopg.connect(dsn, autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [victim.info.backend_pid])
    try:
        victim.commit()
    except psycopg.OperationalError:
        pass
    victim.close()
    t.row("s3", "convert K, backend killed before commit", "(connection lost)")
    t.row("s3", "retry convert K", c.convert_to_debit(w, "s3", "K").code)
    again = c.convert_to_debit(w, "s3", "K")
    t.row("s3", f"retry again (replayed={again.replayed})", again.code)
    debits = [e for e in c.statement(w, "s3", dt.date(2000, 1, 1), dt.date(2999, 12, 31))
              if e.entry_type == "DEBIT"]
    t.expect(f"exactly one DEBIT ({len(debits)})", len(debits) == 1)

    t.title("Scenario 4: 75,000 and 40,000 reserved at the same moment on a 100,000 line")
    c.open_line(w, "s4", 100_000)
    codes = race(dsn, w, "s4", [("big", Decimal(75_000)), ("small", Decimal(40_000))])
    t.row("s4", f"race: 75,000 {codes[0]}, 40,000 {codes[1]}", "")
    winner = Decimal(75_000) if codes[0] == "ok" else Decimal(40_000)
    t.expect("exactly one succeeded, reserved equals the winner",
             sorted(codes) == ["insufficient_credit", "ok"] and c.get_available(w, "s4").reserved == winner)

    t.title(f"Race: {RACERS} concurrent reservations of {_money(RACE_AMOUNT)} on a "
            f"{_money(RACE_LIMIT)} line")
    c.open_line(w, "race", RACE_LIMIT)
    codes = race(dsn, w, "race", [(f"o{i}", RACE_AMOUNT) for i in range(RACERS)])
    won = codes.count("ok")
    t.row("race", f"{won} ok, {codes.count('insufficient_credit')} insufficient_credit", "")
    a = c.get_available(w, "race")
    t.expect(f"nothing overspent: reserved {_money(a.reserved)} <= limit, "
             f"{won} x {_money(RACE_AMOUNT)} = reserved",
             a.reserved <= RACE_LIMIT and a.reserved == won * RACE_AMOUNT
             and won == int(RACE_LIMIT // RACE_AMOUNT))

    findings = c.reconcile()
    t.expect(f"reconcile(): {len(findings)} finding(s)", not findings)
    c.close()
    print("\nall expectations held" if not t.failures else f"\n{t.failures} expectation(s) FAILED")
    return 1 if t.failures else 0
