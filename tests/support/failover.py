"""A primary and a streaming standby on loopback TCP, killed and promoted under
load, for test_failover.py.

The primary and the standby are throwaway clusters started as the server
account (embedded.Server), each listening on 127.0.0.1 on a port found free.
The standby is a `pg_basebackup -R` copy of the primary; clients reach
whichever of the two accepts writes through one multi-host conninfo with
`target_session_attrs=read-write`, as an application would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from pgcredit import CreditClient, Retry, migrate
from pgcredit.tools import embedded
from support.reliability import FAULT_LIMITS, History, open_lines, run_orders

REPLICATOR = "replicator"
STANDBY_NAME = "standby1"
# A synchronous standby that never connects: every commit waits, as for one
# that has stopped. LOCAL: options for a session whose commits do not wait.
ABSENT_STANDBY = "absent_standby"
LOCAL = "-c synchronous_commit=local"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node(embedded.Server):
    """embedded.Server reachable over loopback TCP on a port of its own (its
    Unix socket, in its base directory, carries the same port number)."""

    def __init__(self, base: Path, bin_dir: Path, port: int):
        super().__init__(base, bin_dir)
        self.port = port

    def init(self) -> None:
        # As Server.init, without initdb's final fsync (seconds, for a cluster that lives a minute).
        self.base.mkdir(parents=True, exist_ok=True)
        embedded.give_to_server_user(self.base)
        done = self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                         "--locale=C", "--no-sync")
        if done.returncode:
            raise RuntimeError(f"initdb failed:\n{done.stdout}{done.stderr}")

    def start(self, *settings: str) -> None:
        # Later -c options win over Server.start's own -p and listen_addresses.
        super().start(f"port={self.port}", "listen_addresses=127.0.0.1", *settings)

    def conninfo(self, dbname: str = "postgres", **extra) -> str:
        return make_conninfo(host="127.0.0.1", port=self.port, user="postgres", dbname=dbname,
                             connect_timeout=2, **extra)

    def sql(self, query: str, params=None, dbname: str = "postgres"):
        with psycopg.connect(self.conninfo(dbname), autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else None

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def processes(self) -> list[int]:
        """Every live process of this cluster: those whose working directory is
        its data directory (children left behind by a killed postmaster too)."""
        pids = []
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if Path(os.readlink(proc / "cwd")) == self.data.resolve() and _alive(int(proc.name)):
                    pids.append(int(proc.name))
        return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent, the postmaster, is gone).
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _remove_orphaned_segment(shmid: int) -> None:
    """A postmaster killed with SIGKILL leaves its small System V segment behind
    (a restart in the same directory would remove it; nothing restarts here)."""
    if not shutil.which("ipcrm") or not Path("/proc/sysvipc/shm").exists():
        return
    for row in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]:
        fields = row.split()
        if int(fields[1]) == shmid and int(fields[6]) == 0:  # no process attached
            subprocess.run(["ipcrm", "-m", str(shmid)], capture_output=True)


def wait_for(what: str, check, timeout: float = 30.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = check()
        except psycopg.Error:
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


class Pair:
    """A primary and one streaming standby (application_name standby1)."""

    DB = "credit"

    def __init__(self, bin_dir: Path, base: Path):
        self.bin = bin_dir
        self.primary = Node(base / "primary", bin_dir, free_port())
        self.standby = Node(base / "standby", bin_dir, free_port())
        self.killed = False
        self.paused: list[int] = []

    def setup(self, settings: tuple[str, ...]) -> None:
        p = self.primary
        p.init()
        with open(p.data / "pg_hba.conf", "a") as hba:
            # initdb -A trust already lets every local user replicate from loopback;
            # this names the account a real setup would give a password.
            hba.write(f"host replication {REPLICATOR} 127.0.0.1/32 trust\n")
        p.start("wal_level=replica", "max_wal_senders=4", *settings)
        p.sql(f"CREATE ROLE {REPLICATOR} LOGIN REPLICATION")
        p.sql(f"CREATE DATABASE {self.DB}")
        migrate(self.dsn_primary)
        open_lines(self.dsn_primary, FAULT_LIMITS)

        s = self.standby
        s.base.mkdir(parents=True)
        embedded.give_to_server_user(s.base)
        source = make_conninfo(host="127.0.0.1", port=p.port, user=REPLICATOR, application_name=STANDBY_NAME)
        done = subprocess.run(embedded.as_server_user(
            [str(self.bin / "pg_basebackup"), "-D", str(s.data), "-R", "-X", "stream", "-c", "fast", "--no-sync",
             "-d", source]), capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"pg_basebackup failed:\n{done.stdout}{done.stderr}")
        s.start("hot_standby=on", *settings)
        wait_for("the standby to stream", lambda: p.sql(
            "SELECT 1 FROM pg_stat_replication WHERE application_name = %s AND state = 'streaming'",
            [STANDBY_NAME]))

    @property
    def dsn_primary(self) -> str:
        return self.primary.conninfo(self.DB)

    def dsn(self, **extra) -> str:
        """What applications use: both hosts, writes go to whichever accepts them."""
        return make_conninfo(host="127.0.0.1,127.0.0.1", port=f"{self.primary.port},{self.standby.port}",
                             user="postgres", dbname=self.DB, target_session_attrs="read-write",
                             connect_timeout=2, **extra)

    def make_synchronous(self, level: str) -> None:
        self.primary.sql(f"ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 ({STANDBY_NAME})'")
        self.primary.sql("ALTER SYSTEM SET synchronous_commit = %s" % psycopg.sql.quote(level))
        self.primary.sql("SELECT pg_reload_conf()")
        wait_for("the standby to be synchronous", lambda: self.primary.sql(
            "SELECT 1 FROM pg_stat_replication WHERE application_name = %s AND sync_state = 'sync'",
            [STANDBY_NAME]))

    def stop_wal_receiver(self) -> None:
        """The standby stops receiving WAL: with an empty primary_conninfo its
        WAL receiver exits and is not started again. (pg_wal_replay_pause()
        would not do: WAL received but not replayed is replayed at promotion.)"""
        self.standby.sql("ALTER SYSTEM SET primary_conninfo = ''")
        self.standby.sql("SELECT pg_reload_conf()")
        wait_for("the WAL receiver to stop", lambda: not self.standby.sql("SELECT 1 FROM pg_stat_wal_receiver"))
        wait_for("the primary to lose its standby", lambda: not self.primary.sql(
            "SELECT 1 FROM pg_stat_replication WHERE application_name = %s", [STANDBY_NAME]))

    def pause_standby(self) -> None:
        """SIGSTOP to every process of the standby: it neither receives nor
        confirms WAL, and the primary's synchronous commits wait. What a
        standby's machine does when it hangs, or a network partition."""
        self.paused = self.standby.processes()
        for pid in self.paused:
            os.kill(pid, signal.SIGSTOP)

    def resume_standby(self) -> None:
        for pid in self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.paused = []

    def kill_primary(self, how: str) -> None:
        """'immediate': pg_ctl stop -m immediate (every process quits at once,
        nothing flushed or sent); 'sigkill': SIGKILL to the postmaster alone,
        its children notice and exit on their own."""
        p = self.primary
        shmid = int((p.data / "postmaster.pid").read_text().splitlines()[6].split()[1])
        if how == "immediate":
            p.stop("immediate")
        elif how == "sigkill":
            os.kill(p.postmaster_pid(), signal.SIGKILL)
        else:
            raise ValueError(f"kill mode must be immediate or sigkill, not {how!r}")
        self.killed = True
        # Wait for every process of the old primary to exit: none may write after this.
        deadline = time.monotonic() + 10
        while pids := p.processes():
            if time.monotonic() > deadline:
                for pid in pids:  # the old primary's, and past their time
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        _remove_orphaned_segment(shmid)

    def promote(self) -> None:
        done = subprocess.run(embedded.as_server_user(
            [str(self.bin / "pg_ctl"), "promote", "-w", "-t", "60", "-D", str(self.standby.data)]),
            capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"pg_ctl promote failed:\n{done.stdout}{done.stderr}")
        wait_for("the promoted standby to accept writes", lambda: self.standby.sql(
            "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'")[0][0])

    def close(self) -> None:
        self.resume_standby()  # a stopped postmaster would not stop
        if self.standby.initialized:
            self.standby.stop("fast")
        if self.primary.initialized and not self.killed:
            self.primary.stop("fast")


@contextlib.contextmanager
def pair(bin_dir: Path, settings: tuple[str, ...] = ("fsync=off",)):
    base = Path(tempfile.mkdtemp(prefix="pgcredit-failover-"))
    embedded.give_to_server_user(base)  # both clusters live in it
    p = Pair(bin_dir, base)
    try:
        p.setup(settings)
        yield p
    finally:
        p.close()
        shutil.rmtree(base, ignore_errors=True)


class TimedHistory(History):
    """History that also keeps when each acknowledgement arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self.marks: dict[str, float] = {}
        self.sync_state: list[tuple] = []  # the standby's sync_state on the primary before the kill

    def ack(self, *args, **kwargs) -> None:
        with self._lock:
            self.times.append(time.monotonic())
        super().ack(*args, **kwargs)

    def mark(self, name: str) -> None:
        self.marks[name] = time.monotonic()

    def acks_after(self, name: str) -> int:
        return sum(t > self.marks[name] for t in self.times)

    def acks_between(self, start: float, end: float) -> int:
        return sum(start < t <= end for t in self.times)

    def since_kill(self, name: str) -> float:
        return self.marks[name] - self.marks["kill"]


# The client's retries should outlast the gap between the kill and the
# promotion: 40 tries with full-jitter backoff capped at 0.5 s wait about 9 s
# in all (each wait is uniform in [0, min(0.5, 0.05 * 2^n)] s). A call that
# outlasts them ends in CreditBusy, an unknown outcome, which the worker
# resolves by calling again with the same key.
FAILOVER_RETRY = Retry(attempts=40, base_delay=0.05, max_delay=0.5)
# Gives up well inside the gap, so that CreditBusy happens and is resolved.
IMPATIENT_RETRY = Retry(attempts=3, base_delay=0.05, max_delay=0.2)
STALL = 1.0  # seconds of load between stopping the standby's WAL receiver and the kill


def failover(p: Pair, kill: str, before: float, after: float, stop_receiver: bool = False,
             promote_delay: float = 1.0, retry: Retry = FAILOVER_RETRY, workers: int = 8,
             seed: int = 3) -> TimedHistory:
    """Workers run order lifecycles (run_orders, as in T2) through the multi-host
    conninfo; after `before` seconds the primary is killed (`kill`: immediate or
    sigkill) and, `promote_delay` seconds later (the time a failover manager
    takes to decide), the standby is promoted; the workers carry on for `after`
    seconds on the new primary. With `stop_receiver` the standby first stops receiving
    WAL and the load runs on for a second, so acknowledged commits are missing
    from it: the self-check that the checker sees loss."""
    history = TimedHistory()
    stop = threading.Event()

    retried = threading.local()

    def counted(name, attempt, exc):
        retried.now = True
        history.count("client_retries")
        history.count(f"client_retry_{getattr(exc, 'sqlstate', None) or 'connection'}")

    retry = dataclasses.replace(retry, on_retry=counted)

    sent: set = set()  # (function, key) of every call made so far

    class Client(CreditClient):
        def _call(self, name, check, params):
            key = (name, params["wholesaler_id"], params["retailer_id"],
                   params.get("order_ref") or params.get("payment_ref"))
            first = key not in sent  # not a call again after a dropped ack, which replays anyway
            sent.add(key)
            retried.now = False
            result = super()._call(name, check, params)
            if retried.now and first:
                # The client retried a first call: answered as a replay, the attempt cut off
                # had committed and reached the standby, only its answer was lost; otherwise
                # it had not, and the call was done now.
                history.count("retried_calls_replayed" if result.replayed else "retried_calls_done")
            return result

    def worker(w: int) -> None:
        client = Client(p.dsn(application_name="failover-worker"), retry=retry)
        try:
            run_orders(client, history, random.Random(seed * 1000 + w), stop, w)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    history.mark("start")
    for t in threads:
        t.start()
    try:
        time.sleep(before)
        history.sync_state = p.primary.sql(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s", [STANDBY_NAME])
        if stop_receiver:
            p.stop_wal_receiver()
            history.mark("receiver_stopped")
            time.sleep(STALL)
        # Commits waiting for the standby (SyncRep) when the primary dies: their callers get no answer.
        history.counts["waiting_for_standby"] = p.primary.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")[0][0]
        history.mark("kill")
        p.kill_primary(kill)
        history.mark("dead")
        time.sleep(promote_delay)
        p.promote()
        history.mark("promoted")
        time.sleep(after)
    finally:
        stop.set()
        for t in threads:
            t.join()
    history.mark("end")
    # Acknowledgements after the promotion come from the new primary (the old one is gone).
    first_after = [t for t in history.times if t > history.marks["promoted"]]
    history.marks["first_ack"] = min(first_after) if first_after else float("nan")
    return history


def failover_report(name: str, h: TimedHistory, found: dict[str, list[str]], other: list[str]) -> str:
    c = h.counts
    kinds = ", ".join(f"{k.removeprefix('client_retry_')} {v}" for k, v in sorted(c.items())
                      if k.startswith("client_retry_"))
    paused = (f"; {h.acks_after('receiver_stopped') - h.acks_after('kill')} acknowledged after the standby "
              f"stopped receiving" if "receiver_stopped" in h.marks else "")
    return (f"{name}: {len(h.acks)} ops acknowledged ({len(h.acks) - h.acks_after('kill')} before the kill, "
            f"{h.acks_after('kill')} after){paused}; primary dead after {h.since_kill('dead'):.2f} s, "
            f"{c['waiting_for_standby']} commits waiting for the standby just before the kill; "
            f"standby promoted after {h.since_kill('promoted'):.2f} s, first acknowledgement from it "
            f"{h.marks['first_ack'] - h.marks['promoted']:.3f} s after that; "
            f"unknown outcomes {c['unknown_outcomes']} ({c['dropped_acks']} dropped acks, "
            f"{c['credit_busy']} CreditBusy); client retries {c['client_retries']} ({kinds}), "
            f"answered as replays {c['retried_calls_replayed']}, done afresh {c['retried_calls_done']}; "
            f"lost {len(found['lost'])}, phantom {len(found['phantom'])}, duplicate {len(found['duplicate'])}, "
            f"other violations {len(other)}")
