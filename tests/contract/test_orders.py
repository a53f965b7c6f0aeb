"""SPEC v1.2 "Orders as they happen": amendments, shipments, remittances, from
plain SQL, code by code, replay by replay; and what reconcile() proves of them."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal as D

import pytest

from support.db import call, table_counts

W, R = "w", "r"


@pytest.fixture
def line(conn):
    call(conn, "open_line", W, R, 10_000)
    return conn


def today(conn) -> dt.date:
    return conn.execute("SELECT current_date AS d").fetchone()["d"]


def avail(conn):
    return call(conn, "get_available", W, R)


def findings(conn) -> set[str]:
    return {r["check_name"] for r in conn.execute("SELECT * FROM credit.reconcile()")}


def amend(conn, ref, amount, key):
    return call(conn, "amend_reservation", W, R, ref, amount, key)


def ship(conn, ref, amount, key, due=None):
    return call(conn, "convert_to_debit", W, R, ref, amount, due, key)


# -- amend_reservation -------------------------------------------------------------

def test_a_raise_holds_the_increase_and_a_cut_frees_it(line):
    held = call(line, "reserve_credit", W, R, "o", 1_000)
    up = amend(line, "o", 1_500, "a1")
    assert list(up) == ["code", "reservation_id", "status", "amount", "previous_amount", "remaining_amount",
                        "available", "shortfall", "replayed"]
    assert up == {"code": "ok", "reservation_id": held["reservation_id"], "status": "active", "amount": D(1_500),
                  "previous_amount": D(1_000), "remaining_amount": D(1_500), "available": D(8_500),
                  "shortfall": D(0), "replayed": False}
    down = amend(line, "o", 400, "a2")
    assert (down["code"], down["amount"], down["previous_amount"], down["available"]) == \
        ("ok", D(400), D(1_500), D(9_600))
    assert avail(line)["reserved"] == D(400)
    assert line.execute("SELECT amend_ref, previous_amount, new_amount, created_at IS NOT NULL AS at "
                        "FROM credit.amendment ORDER BY id").fetchall() == [
        {"amend_ref": "a1", "previous_amount": D(1_000), "new_amount": D(1_500), "at": True},
        {"amend_ref": "a2", "previous_amount": D(1_500), "new_amount": D(400), "at": True}]
    info = call(line, "get_reservation", W, R, "o")
    assert (info["amount"], info["remaining_amount"], info["status"]) == (D(400), D(400), "active")
    assert findings(line) == set()


def test_a_raise_beyond_available_is_refused_logged_and_changes_nothing(line):
    call(line, "reserve_credit", W, R, "o", 1_000)
    call(line, "reserve_credit", W, R, "big", 8_500)  # available 500
    before = call(line, "get_reservation", W, R, "o")
    no = amend(line, "o", D("1500.01"), "a1")
    assert (no["code"], no["amount"], no["previous_amount"], no["available"], no["shortfall"], no["replayed"]) == \
        ("insufficient_credit", D(1_000), None, D(500), D("0.01"), False)
    assert call(line, "get_reservation", W, R, "o") == before and avail(line)["reserved"] == D(9_500)
    assert line.execute("SELECT code, order_ref, amount, available FROM credit.refusal").fetchall() == \
        [{"code": "insufficient_credit", "order_ref": "o", "amount": D("500.01"), "available": D(500)}]
    assert line.execute("SELECT count(*) AS n FROM credit.amendment").fetchone()["n"] == 0
    # The key was not used: the same ref, with room, is granted.
    assert amend(line, "o", 1_500, "a1")["code"] == "ok" and avail(line)["available"] == D(0)


def test_raise_refusals_come_in_reservation_order_and_a_cut_is_always_granted(line):
    t = today(line)
    call(line, "reserve_credit", W, R, "late", 100)
    call(line, "convert_to_debit", W, R, "late", None, t - dt.timedelta(days=5))
    call(line, "reserve_credit", W, R, "o", 1_000)
    call(line, "set_overdue_policy", W, R, 0)
    call(line, "block_line", W, R, "review")
    assert amend(line, "o", 100_000, "a1")["code"] == "line_blocked"
    call(line, "unblock_line", W, R, "done")
    assert amend(line, "o", 100_000, "a1")["code"] == "overdue"
    call(line, "set_overdue_policy", W, R, None)
    assert amend(line, "o", 100_000, "a1")["code"] == "insufficient_credit"
    call(line, "set_overdue_policy", W, R, 0)
    call(line, "block_line", W, R, "again")
    cut = amend(line, "o", 600, "a2")  # blocked and overdue: a cut still goes through
    assert (cut["code"], cut["amount"], cut["remaining_amount"]) == ("ok", D(600), D(600))
    assert amend(line, "o", 600, "a3")["code"] == "ok"  # no change is no raise
    codes = [r["code"] for r in line.execute("SELECT code FROM credit.refusal ORDER BY id")]
    assert codes == ["line_blocked", "overdue", "insufficient_credit"]


def test_amend_replays_first_and_keys_are_per_line_for_ever(line):
    call(line, "reserve_credit", W, R, "o", 1_000)
    call(line, "reserve_credit", W, R, "p", 1_000)
    first = amend(line, "o", 1_200, "a1")
    amend(line, "o", 900, "a2")
    again = amend(line, "o", 1_200, "a1")  # the hold is at 900 now: a replay changes nothing
    assert (again["code"], again["replayed"], again["amount"], again["previous_amount"], again["reservation_id"]) == \
        ("ok", True, D(1_200), D(1_000), first["reservation_id"])
    assert (again["remaining_amount"], again["available"]) == (D(900), D(8_100))  # today's figures
    assert amend(line, "o", 1_300, "a1")["code"] == "exists_with_different_amount"
    other = amend(line, "p", 1_200, "a1")  # the same ref for another order, even with the same amount
    assert (other["code"], other["replayed"]) == ("exists_with_different_terms", False)
    call(line, "release_reservation", W, R, "o")
    assert amend(line, "o", 1_200, "a1")["replayed"] is True  # a replay even after the hold ended
    call(line, "set_credit_limit", W, R, 0, "freeze")
    assert amend(line, "o", 900, "a2")["code"] == "ok"
    assert line.execute("SELECT count(*) AS n FROM credit.amendment").fetchone()["n"] == 2
    assert avail(line)["reserved"] == D(1_000)


def test_amend_codes_for_missing_and_ended_holds(line):
    assert call(line, "amend_reservation", W, "nobody", "o", 1, "a")["code"] == "line_not_found"
    assert amend(line, "o", 1, "a")["code"] == "reservation_not_found"
    for ref, end in (("rel", "release_reservation"), ("conv", "convert_to_debit")):
        call(line, "reserve_credit", W, R, ref, 100)
        call(line, end, W, R, ref)
    assert amend(line, "rel", 50, "a")["code"] == "reservation_released"
    assert amend(line, "conv", 50, "a")["code"] == "reservation_converted"
    call(line, "reserve_credit", W, R, "gone", 100, dt.timedelta(milliseconds=30))
    time.sleep(0.1)
    assert amend(line, "gone", 50, "a")["code"] == "reservation_expired"
    assert line.execute("SELECT count(*) AS n FROM credit.amendment").fetchone()["n"] == 0
    assert findings(line) == set()


def test_the_original_reservation_still_replays_after_an_amendment(line):
    held = call(line, "reserve_credit", W, R, "o", 1_000)
    amend(line, "o", 1_400, "a1")
    again = call(line, "reserve_credit", W, R, "o", 1_000)
    assert (again["code"], again["replayed"], again["reservation_id"], again["amount"]) == \
        ("ok", True, held["reservation_id"], D(1_400))
    assert call(line, "reserve_credit", W, R, "o", 1_400)["code"] == "exists_with_different_amount"
    assert findings(line) == set()


def test_an_amended_hold_expires_as_before(line):
    call(line, "reserve_credit", W, R, "o", 1_000, dt.timedelta(milliseconds=300))
    amend(line, "o", 2_000, "a1")
    time.sleep(0.4)
    assert avail(line)["reserved"] == 0
    assert line.execute("SELECT credit.expire_reservations() AS n").fetchone()["n"] == 1
    info = call(line, "get_reservation", W, R, "o")
    assert (info["status"], info["amount"], info["released_amount"], info["remaining_amount"]) == \
        ("expired", D(2_000), D(2_000), D(0))
    assert findings(line) == set()


# -- shipments ------------------------------------------------------------------------

def test_an_order_shipped_in_parts_each_with_its_own_due_date(line):
    t = today(line)
    held = call(line, "reserve_credit", W, R, "o", 1_000)
    first = ship(line, "o", 300, "o/1", t + dt.timedelta(days=10))
    assert list(first)[-1] == "remaining_amount"
    assert (first["code"], first["status"], first["debited_amount"], first["released_amount"], first["due_date"],
            first["available"], first["remaining_amount"], first["replayed"]) == \
        ("ok", "active", D(300), D(0), t + dt.timedelta(days=10), D(9_000), D(700), False)
    assert (avail(line)["reserved"], avail(line)["outstanding"]) == (D(700), D(300))
    second = ship(line, "o", None, "o/2")  # all that remains, due after the line's terms
    assert (second["status"], second["debited_amount"], second["due_date"], second["remaining_amount"]) == \
        ("converted", D(700), t + dt.timedelta(days=30), D(0))
    debits = line.execute("SELECT ref, amount, due_date, reservation_id = %s AS mine FROM credit.ledger_entry "
                          "ORDER BY id", [held["reservation_id"]]).fetchall()
    assert debits == [{"ref": "o/1", "amount": D(300), "due_date": t + dt.timedelta(days=10), "mine": True},
                      {"ref": "o/2", "amount": D(700), "due_date": t + dt.timedelta(days=30), "mine": True}]
    info = call(line, "get_reservation", W, R, "o")
    assert (info["status"], info["converted_amount"], info["released_amount"], info["ledger_entry_id"],
            info["due_date"]) == ("converted", D(1_000), D(0), second["ledger_entry_id"], t + dt.timedelta(days=30))
    assert findings(line) == set()


def test_a_final_conversion_after_shipments_debits_under_the_order_ref_and_releases_the_rest(line):
    call(line, "reserve_credit", W, R, "o", 1_000)
    ship(line, "o", 300, "o/1")
    final = call(line, "convert_to_debit", W, R, "o", 500)
    assert (final["status"], final["debited_amount"], final["released_amount"], final["remaining_amount"],
            final["available"]) == ("converted", D(500), D(200), D(0), D(9_200))
    assert [r["ref"] for r in line.execute("SELECT ref FROM credit.ledger_entry ORDER BY id")] == ["o/1", "o"]
    info = call(line, "get_reservation", W, R, "o")
    assert (info["converted_amount"], info["released_amount"]) == (D(800), D(200))
    # Its replay: NULL meant "all that remained" (700), so only 500 replays.
    again = call(line, "convert_to_debit", W, R, "o", 500)
    assert (again["code"], again["replayed"], again["ledger_entry_id"]) == ("ok", True, final["ledger_entry_id"])
    assert call(line, "convert_to_debit", W, R, "o")["code"] == "exists_with_different_amount"
    assert findings(line) == set()


def test_shipment_replays_and_conflicts(line):
    call(line, "reserve_credit", W, R, "o", 1_000)
    call(line, "reserve_credit", W, R, "p", 1_000)
    first = ship(line, "o", 300, "s1")
    for amount in (300, None):
        again = ship(line, "o", amount, "s1")
        assert (again["code"], again["replayed"], again["ledger_entry_id"], again["debited_amount"],
                again["remaining_amount"]) == ("ok", True, first["ledger_entry_id"], D(300), D(700))
    assert ship(line, "o", 301, "s1")["code"] == "exists_with_different_amount"
    assert ship(line, "p", 300, "s1")["code"] == "exists_with_different_amount"  # another order
    assert ship(line, "nobody", 300, "s1")["code"] == "exists_with_different_amount"
    # A shipment ref is a DEBIT ref: an order whose own ref is taken cannot be finally converted under it.
    call(line, "reserve_credit", W, R, "s1", 100)
    before = table_counts(line)
    clash = call(line, "convert_to_debit", W, R, "s1")
    assert (clash["code"], clash["ledger_entry_id"]) == ("exists_with_different_amount", first["ledger_entry_id"])
    assert table_counts(line) == before
    assert ship(line, "s1", None, "s1/1")["code"] == "ok"  # shipped under a ref of its own, it goes through
    assert line.execute("SELECT count(*) AS n FROM credit.ledger_entry").fetchone()["n"] == 2
    assert findings(line) == set()


def test_shipment_codes(line):
    assert call(line, "convert_to_debit", W, "nobody", "o", 1, None, "s")["code"] == "line_not_found"
    assert ship(line, "o", 1, "s")["code"] == "reservation_not_found"
    call(line, "reserve_credit", W, R, "o", 100)
    assert ship(line, "o", D("100.01"), "s")["code"] == "exceeds_reservation_amount"
    ship(line, "o", 60, "s1")
    assert ship(line, "o", 41, "s2")["code"] == "exceeds_reservation_amount"  # 40 remain
    ship(line, "o", 40, "s2")
    for amount in (1, None):  # converted by its shipments: nothing remains to ship
        assert ship(line, "o", amount, "s3")["code"] == "exceeds_reservation_amount"
    # A final conversion of an order its shipments converted: nothing is left to debit.
    done = call(line, "convert_to_debit", W, R, "o")
    assert (done["code"], done["replayed"], done["debited_amount"], done["status"]) == ("ok", True, D(0), "converted")
    assert call(line, "convert_to_debit", W, R, "o", 1)["code"] == "exceeds_reservation_amount"
    call(line, "reserve_credit", W, R, "rel", 100)
    call(line, "release_reservation", W, R, "rel")
    assert ship(line, "rel", 1, "s4")["code"] == "reservation_released"
    assert line.execute("SELECT count(*) AS n FROM credit.ledger_entry").fetchone()["n"] == 2


def test_releasing_or_expiring_a_partly_shipped_hold_frees_what_remains(line):
    call(line, "reserve_credit", W, R, "o", 1_000)
    ship(line, "o", 250, "o/1")
    rel = call(line, "release_reservation", W, R, "o", "rest out of stock")
    assert (rel["released_amount"], rel["available"]) == (D(750), D(9_750))
    info = call(line, "get_reservation", W, R, "o")
    assert (info["status"], info["converted_amount"], info["released_amount"], info["remaining_amount"]) == \
        ("released", D(250), D(750), D(0))
    call(line, "reserve_credit", W, R, "e", 1_000, dt.timedelta(milliseconds=300))
    ship(line, "e", 100, "e/1")
    time.sleep(0.4)
    assert avail(line)["reserved"] == 0  # before any sweep
    assert call(line, "get_reservation", W, R, "e")["remaining_amount"] == 0
    assert ship(line, "e", 100, "e/2")["code"] == "reservation_expired"
    info = call(line, "get_reservation", W, R, "e")
    assert (info["status"], info["converted_amount"], info["released_amount"]) == ("expired", D(100), D(900))
    assert (avail(line)["reserved"], avail(line)["outstanding"]) == (D(0), D(350))
    assert findings(line) == set()


def test_amending_a_partly_shipped_order(line):
    call(line, "reserve_credit", W, R, "o", 1_000)
    ship(line, "o", 400, "o/1")
    up = amend(line, "o", 1_200, "a1")
    assert (up["amount"], up["remaining_amount"], avail(line)["reserved"]) == (D(1_200), D(800), D(800))
    low = amend(line, "o", D("399.99"), "a2")
    assert (low["code"], low["amount"], low["remaining_amount"]) == ("below_converted_amount", D(1_200), D(800))
    done = amend(line, "o", 400, "a3")  # down to what was shipped: nothing left to hold
    assert (done["code"], done["status"], done["remaining_amount"], done["available"]) == \
        ("ok", "converted", D(0), D(9_600))
    info = call(line, "get_reservation", W, R, "o")
    assert (info["status"], info["converted_amount"], info["released_amount"]) == ("converted", D(400), D(0))
    assert amend(line, "o", 500, "a4")["code"] == "reservation_converted"
    assert findings(line) == set()


def test_lists_show_what_each_hold_still_holds(line):
    call(line, "reserve_credit", W, R, "a", 100)
    call(line, "reserve_credit", W, R, "b", 100)
    ship(line, "b", 30, "b/1")
    call(line, "reserve_credit", W, R, "c", 100)
    call(line, "convert_to_debit", W, R, "c")
    rows = line.execute("SELECT order_ref, status, amount, remaining_amount "
                        "FROM credit.list_reservations(%s, %s, NULL)", [W, R]).fetchall()
    assert [tuple(r.values()) for r in rows] == [
        ("a", "active", D(100), D(100)), ("b", "active", D(100), D(70)), ("c", "converted", D(100), D(0))]


def test_a_shipment_is_reversed_by_its_own_ref(line):
    call(line, "reserve_credit", W, R, "o", 1_000)
    ship(line, "o", 300, "o/1")
    ship(line, "o", 200, "o/2")
    back = call(line, "reverse_debit", W, R, "o/1", "ret1", 100, "damaged")
    assert (back["code"], back["outstanding"]) == ("ok", D(400))
    assert call(line, "reverse_debit", W, R, "o/2", "ret2", 201, "x")["code"] == "exceeds_debit_amount"
    assert call(line, "reverse_debit", W, R, "o", "ret3", 1, "x")["code"] == "debit_not_found"  # no final yet
    unpaid = line.execute("SELECT e.ref, o.unpaid FROM credit.open_item o JOIN credit.ledger_entry e "
                          "ON e.id = o.entry_id ORDER BY e.id").fetchall()
    assert [tuple(r.values()) for r in unpaid] == [("o/1", D(200)), ("o/2", D(200))]
    assert findings(line) == set()


def test_shipments_in_a_batch(line):
    for ref in ("a", "b", "c"):
        call(line, "reserve_credit", W, R, ref, 100)
    rows = line.execute(
        "SELECT * FROM credit.convert_to_debit_batch(%s, %s, %s, %s, %s)",
        [[W] * 4, [R] * 4, ["a", "a", "b", "c"], [40, None, None, 70], ["a/1", "a/2", None, "c/1"]]).fetchall()
    assert list(rows[0])[-1] == "remaining_amount"
    assert [(r["item"], r["code"], r["status"], r["debited_amount"], r["remaining_amount"]) for r in rows] == [
        (1, "ok", "active", D(40), D(60)), (2, "ok", "converted", D(60), D(0)),
        (3, "ok", "converted", D(100), D(0)), (4, "ok", "active", D(70), D(30))]
    again = line.execute("SELECT * FROM credit.convert_to_debit_batch(%s, %s, %s, %s)",
                         [[W, W], [R, R], ["c", "a"], [None, 40]]).fetchall()
    assert [(r["code"], r["debited_amount"]) for r in again] == [("ok", D(30)), ("exceeds_reservation_amount", None)]
    assert findings(line) == set()


# -- remittances -----------------------------------------------------------------------

@pytest.fixture
def invoices(line):
    """Three DEBITs: A due 40 days ago, B 20 days ago, C (a shipment) in 10 days."""
    t = today(line)
    for ref, amount, due in (("A", 300, -40), ("B", 200, -20)):
        call(line, "reserve_credit", W, R, ref, amount)
        call(line, "convert_to_debit", W, R, ref, None, t + dt.timedelta(days=due))
    call(line, "reserve_credit", W, R, "C", 500)
    ship(line, "C", 100, "C/1", t + dt.timedelta(days=10))
    return line, t


def unpaid(conn):
    return {r["ref"]: r["unpaid"] for r in conn.execute(
        "SELECT e.ref, o.unpaid FROM credit.open_item o JOIN credit.ledger_entry e ON e.id = o.entry_id")}


def test_a_remittance_pays_the_invoices_it_names_in_order_then_the_oldest(invoices):
    conn, t = invoices
    paid = call(conn, "record_payment", W, R, "bank-1", 250, ["C/1", "B"])
    assert (paid["code"], paid["outstanding"]) == ("ok", D(350))
    assert unpaid(conn) == {"A": D(300), "B": D(50)}  # C/1 in full, then 150 of B
    a = avail(conn)
    assert (a["past_due"], a["oldest_unpaid_due_date"]) == (D(350), t - dt.timedelta(days=40))
    rest = call(conn, "record_payment", W, R, "bank-2", 400, ["B"])  # 50 to B, 300 to A, 50 unapplied
    assert (rest["outstanding"], unpaid(conn)) == (D(-50), {})
    aging = call(conn, "aging", t, W, R)
    assert (aging["unapplied_credit"], aging["outstanding"]) == (D(50), D(-50))
    assert conn.execute("SELECT applies_to FROM credit.ledger_entry WHERE ref = 'bank-1'").fetchone() == \
        {"applies_to": ["C/1", "B"]}
    assert findings(conn) == set()


def test_named_invoices_already_paid_are_skipped(invoices):
    conn, _ = invoices
    call(conn, "record_payment", W, R, "p1", 300, ["A"])
    call(conn, "record_payment", W, R, "p2", 100, ["A", "C/1"])
    assert unpaid(conn) == {"B": D(200)}
    assert findings(conn) == set()


def test_aging_past_due_and_the_overdue_policy_follow_a_remittance(invoices):
    conn, t = invoices
    call(conn, "set_overdue_policy", W, R, 30)  # A is 40 days late: refused
    assert call(conn, "reserve_credit", W, R, "new", 10)["code"] == "overdue"
    call(conn, "record_payment", W, R, "p1", 300, ["B", "C/1"])  # pays the later ones: still refused
    assert call(conn, "reserve_credit", W, R, "new", 10)["code"] == "overdue"
    row = call(conn, "aging", t, W, R)
    assert (row["days_1_30"], row["days_31_60"], row["not_due"]) == (D(0), D(300), D(0))
    call(conn, "record_payment", W, R, "p2", 300, ["A"])
    assert call(conn, "reserve_credit", W, R, "new", 10)["code"] == "ok"
    assert avail(conn)["past_due"] == 0 and call(conn, "aging", t, W, R) is None
    assert findings(conn) == set()


def test_a_remittance_naming_an_unknown_ref_writes_nothing(invoices):
    conn, _ = invoices
    before = table_counts(conn)
    no = call(conn, "record_payment", W, R, "p1", 100, ["A", "nope"])
    assert (no["code"], no["ledger_entry_id"], no["outstanding"]) == ("debit_not_found", None, D(600))
    assert call(conn, "record_payment", W, R, "p1", 100, ["C"])["code"] == "debit_not_found"  # a hold, no DEBIT
    assert table_counts(conn) == before
    assert call(conn, "record_payment", W, R, "p1", 100, ["A"])["code"] == "ok"  # the key was not used


def test_remittance_replays_compare_amount_then_refs(invoices):
    conn, _ = invoices
    first = call(conn, "record_payment", W, R, "p1", 100, ["B", "A"])
    again = call(conn, "record_payment", W, R, "p1", 100, ["B", "A"])
    assert (again["code"], again["replayed"], again["ledger_entry_id"]) == ("ok", True, first["ledger_entry_id"])
    for other in (["A", "B"], ["B"], None, ["B", "A", "C/1"]):
        row = call(conn, "record_payment", W, R, "p1", 100, other)
        assert (row["code"], row["replayed"]) == ("exists_with_different_terms", False), other
    assert call(conn, "record_payment", W, R, "p1", 101, ["B", "A"])["code"] == "exists_with_different_amount"
    plain = call(conn, "record_payment", W, R, "p2", 50)
    assert call(conn, "record_payment", W, R, "p2", 50, [])["replayed"] is True  # an empty list is no list
    assert call(conn, "record_payment", W, R, "p2", 50, ["A"])["code"] == "exists_with_different_terms"
    assert plain["code"] == "ok" and findings(conn) == set()


# -- reconcile ------------------------------------------------------------------------

@pytest.fixture
def orders_book(line):
    """A partly shipped and amended hold, a converted one shipped in two, a
    released partly shipped one, an expired one."""
    call(line, "reserve_credit", W, R, "part", 1_000)
    amend(line, "part", 1_200, "a1")
    ship(line, "part", 300, "part/1")
    call(line, "reserve_credit", W, R, "done", 500)
    ship(line, "done", 200, "done/1")
    ship(line, "done", 300, "done/2")
    call(line, "reserve_credit", W, R, "cut", 400)
    ship(line, "cut", 100, "cut/1")
    call(line, "release_reservation", W, R, "cut")
    call(line, "reserve_credit", W, R, "gone", 50, dt.timedelta(milliseconds=30))
    time.sleep(0.1)
    line.execute("SELECT credit.expire_reservations()")
    call(line, "record_payment", W, R, "pay", 150, ["done/2"])
    assert findings(line) == set()
    return line


@pytest.mark.parametrize("check, corruption", [
    # reserved counts what active holds still hold
    ("reserved_total", "UPDATE credit.line SET reserved = reserved + 300"),
    # an ended hold: converted + released = amount
    ("hold_state", "UPDATE credit.reservation SET released_amount = NULL WHERE order_ref = 'gone'"),
    ("hold_state", "UPDATE credit.reservation SET released_amount = 400 WHERE order_ref = 'cut'"),
    ("hold_state", "UPDATE credit.reservation SET released_amount = 1 WHERE order_ref = 'done'"),
    # an active hold has released nothing and holds something
    ("hold_state", "UPDATE credit.reservation SET released_amount = 0 WHERE order_ref = 'part'"),
    # a hold's DEBITs sum to converted_amount, the latest linked
    ("converted_hold_debit", "UPDATE credit.reservation SET converted_amount = 250, amount = 1150 "
                             "WHERE order_ref = 'part'"),
    ("converted_hold_debit", "UPDATE credit.reservation SET converted_amount = 200, released_amount = 300 "
                             "WHERE order_ref = 'done'"),
    ("converted_hold_debit", "UPDATE credit.reservation SET debit_entry_id = (SELECT id FROM credit.ledger_entry "
                             "WHERE ref = 'done/1') WHERE order_ref = 'done'"),
    ("debit_hold_link", "UPDATE credit.reservation SET debit_entry_id = (SELECT id FROM credit.ledger_entry "
                        "WHERE ref = 'done/1') WHERE order_ref = 'done'"),
    ("converted_hold_debit", "UPDATE credit.reservation SET converted_amount = NULL, debit_entry_id = NULL "
                             "WHERE order_ref = 'cut'"),
    # amendments chain to the hold's amount
    ("amendment_chain", "UPDATE credit.reservation SET amount = 1100, original_amount = 1000 WHERE order_ref = 'part'"),
    ("amendment_chain", "UPDATE credit.reservation SET original_amount = 999 WHERE order_ref = 'part'"),
    ("amendment_chain", "UPDATE credit.reservation SET original_amount = 500 WHERE order_ref = 'done'"),
    # a settlement settles an item of its own line (the foreign key proves only that the entry exists)
    ("settlement_item", "INSERT INTO credit.settlement (line_id, item_id, amount) "
                        "SELECT line_id, id, 1 FROM credit.ledger_entry WHERE ref = 'pay'"),
])
def test_reconcile_finds_each_corruption_of_an_order(orders_book, check, corruption):
    orders_book.execute(corruption)
    assert check in findings(orders_book)


def test_a_raise_counts_as_a_reservation_for_the_limit_check(line):
    """Exposure over the limit is explained by a limit cut made after the
    last grant, and a raise is a grant: one after the cut is overspending."""
    call(line, "reserve_credit", W, R, "o", 5_000)
    call(line, "set_credit_limit", W, R, 1_000, "cut")
    assert findings(line) == set()
    # What a raise that skipped the credit check would leave behind.
    line.execute("INSERT INTO credit.amendment (line_id, amend_ref, order_ref, previous_amount, new_amount) "
                 "SELECT line_id, 'forged', 'o', 5000, 6000 FROM credit.reservation")
    line.execute("UPDATE credit.reservation SET amount = 6000, original_amount = 5000")
    line.execute("UPDATE credit.line SET reserved = 6000")
    assert findings(line) == {"over_limit"}


def test_the_remittance_example_in_receivables_md(line):
    """RECEIVABLES.md's remittance example, step by step (today is its 15 April)."""
    t = today(line)
    day = lambda n: t + dt.timedelta(days=n)  # noqa: E731
    call(line, "reserve_credit", W, R, "A", 700)
    ship(line, "A", 400, "A/1", day(-15))
    ship(line, "A", 300, "A/2", day(-6))
    call(line, "reserve_credit", W, R, "B", 200)
    call(line, "convert_to_debit", W, R, "B", None, day(-4))
    call(line, "set_overdue_policy", W, R, 10)
    assert unpaid(line) == {"A/1": D(400), "A/2": D(300), "B": D(200)}
    call(line, "record_payment", W, R, "remit-1", 450, ["B", "A/2"])
    assert unpaid(line) == {"A/1": D(400), "A/2": D(50)}
    aging = call(line, "aging", t, W, R)
    assert (aging["days_1_30"], aging["not_due"], aging["unapplied_credit"]) == (D(450), D(0), D(0))
    assert call(line, "reserve_credit", W, R, "C", 10)["code"] == "overdue"  # A/1 is 15 days late
    call(line, "record_payment", W, R, "remit-2", 500, ["B", "A/2"])
    assert unpaid(line) == {} and call(line, "aging", t, W, R)["unapplied_credit"] == D(50)
    assert call(line, "reserve_credit", W, R, "C", 10)["code"] == "ok"
    assert findings(line) == set()
