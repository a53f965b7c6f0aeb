"""./dev installs what the suite uses beyond Python once, where the machine
allows it, says so, and never fails the command for it, unless
PGCREDIT_STRICT_SETUP=1 (CI) asks it to fail when the machine allowed an
install that did not happen; .ci/run runs the README's test command and
nothing else.

./dev runs here in a copy of the repository's files it reads, on a PATH of
stand-ins (apt-get, id, npm, systemctl) that write down how they were called,
and a stand-in root directory (PGCREDIT_SYSROOT) for the PostgreSQL 15 files."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ["postgresql-15-plpgsql-check", "postgresql-15-plproxy", "postgresql-15-cron", "prometheus",
            "prometheus-postgres-exporter"]
# What ./dev uses from the system besides the stand-ins.
TOOLS = ["dirname", "mkdir", "touch", "cut", "tr", "sed", "cat"]
# What each package puts where ./dev looks for it.
FILES = {"postgresql-15-plpgsql-check": "plpgsql_check.control", "postgresql-15-plproxy": "plproxy.control",
         "postgresql-15-cron": "pg_cron.control", "prometheus": "promtool",
         "prometheus-postgres-exporter": "prometheus-postgres-exporter"}


def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


class Machine:
    def __init__(self, tmp: Path):
        self.repo = tmp / "repo"
        self.bin = tmp / "bin"
        self.root = tmp / "root"
        self.log = tmp / "calls.log"
        for d in (self.repo / "examples" / "node", self.bin, self.root / "usr/lib/postgresql/15",
                  self.root / "usr/share/postgresql/15/extension"):
            d.mkdir(parents=True)
        shutil.copy(REPO / "dev", self.repo / "dev")
        (self.repo / "examples/node/package-lock.json").write_text("{}")
        for tool in TOOLS:
            os.symlink(shutil.which(tool), self.bin / tool)
        self.user(0)
        self.apt_installs()
        self.fake("systemctl", 0)
        _script(self.bin / "npm", f'echo "npm $* in $(pwd)" >> {self.log}\n'
                                  'mkdir -p node_modules && touch node_modules/.package-lock.json\n')

    def user(self, uid: int) -> None:
        _script(self.bin / "id", f'[ "$1" = -u ] && echo {uid}\n')

    def apt_installs(self, *left_out: str) -> None:
        """An apt-get that installs what it is asked for, but the packages left out."""
        ext, body = self.root / "usr/share/postgresql/15/extension", ""
        for package, file in FILES.items():
            if package not in left_out:
                made = f"touch {ext / file}" if file.endswith(".control") else \
                    f"printf '#!/bin/sh\\n' > {self.bin / file}; {shutil.which('chmod')} +x {self.bin / file}"
                body += f'case " $* " in *" {package} "*) [ "$1" = install ] && {{ {made}; }};; esac\n'
        _script(self.bin / "apt-get", f'echo "apt-get $*" >> {self.log}\n{body}exit 0\n')

    def fake(self, name: str, status: int) -> None:
        _script(self.bin / name, f'echo "{name} $*" >> {self.log}\nexit {status}\n')

    def has(self, *names: str) -> None:
        """Installed already: extension control files or commands on PATH."""
        for n in names:
            if n.endswith(".control"):
                (self.root / "usr/share/postgresql/15/extension" / n).touch()
            else:
                _script(self.bin / n, "exit 0\n")

    def dev(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        self.log.unlink(missing_ok=True)
        return subprocess.run(["/bin/sh", str(self.repo / "dev"), *args], capture_output=True, text=True,
                              env={"PATH": str(self.bin), "PGCREDIT_SYSROOT": str(self.root), **env}, timeout=60)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def machine(tmp_path) -> Machine:
    return Machine(tmp_path)


def _installs(calls: list[str]) -> list[list[str]]:
    return [c.split()[2:] for c in calls if c.startswith("apt-get install")]


def test_as_root_it_installs_what_is_missing_says_why_and_stops_the_services(machine):
    done = machine.dev("setup")
    assert done.returncode == 0, done.stderr
    calls = machine.calls()
    assert _installs(calls) == [["-y", "-q", "--no-install-recommends", *PACKAGES]]
    assert "systemctl disable --now prometheus prometheus-postgres-exporter" in calls
    assert f"npm ci --no-audit --no-fund in {machine.repo / 'examples/node'}" in calls
    for package in PACKAGES:
        assert re.search(rf"^  {package}: \S", done.stderr, re.M), done.stderr
    assert "installed " + " ".join(PACKAGES) in done.stderr


def test_only_what_is_missing_and_nothing_when_all_is_there(machine):
    machine.has("plpgsql_check.control", "pg_cron.control", "promtool")
    machine.dev("setup")
    assert _installs(machine.calls()) == [["-y", "-q", "--no-install-recommends", "postgresql-15-plproxy",
                                           "prometheus-postgres-exporter"]]
    machine.has("plproxy.control", "prometheus-postgres-exporter")
    done = machine.dev("setup")  # node_modules is there now too
    assert machine.calls() == [] and done.stderr == ""


def test_no_postgresql_15_means_no_extension_packages(machine):
    shutil.rmtree(machine.root / "usr/lib/postgresql/15")
    machine.dev("setup")
    assert _installs(machine.calls()) == [["-y", "-q", "--no-install-recommends", "prometheus",
                                           "prometheus-postgres-exporter"]]


def test_a_failed_install_tries_after_an_update_then_goes_on_saying_so(machine):
    machine.fake("apt-get", 100)
    done = machine.dev("setup")
    assert done.returncode == 0
    calls = machine.calls()
    assert [c.split()[1] for c in calls if c.startswith("apt-get")] == ["install", "update"]
    assert "NOTICE: could not install" in done.stderr and "will skip" in done.stderr


def test_without_root_or_apt_it_installs_nothing_and_says_what_will_skip(machine):
    machine.user(1000)
    done = machine.dev("setup")
    assert done.returncode == 0
    assert _installs(machine.calls()) == []
    assert "NOTICE: not installing " + " ".join(PACKAGES) in done.stderr and "skip" in done.stderr
    machine.user(0)
    (machine.bin / "apt-get").unlink()
    done = machine.dev("setup")
    assert done.returncode == 0 and "that needs root and apt-get" in done.stderr


def test_strict_fails_when_the_machine_allowed_the_install(machine):
    machine.fake("apt-get", 100)
    done = machine.dev("setup", PGCREDIT_STRICT_SETUP="1")
    assert done.returncode == 1 and "ERROR: could not install" in done.stderr
    machine.apt_installs("prometheus")  # apt-get succeeds, yet promtool is not there
    done = machine.dev("setup", PGCREDIT_STRICT_SETUP="1")
    assert done.returncode == 1 and "ERROR: apt-get ran, yet prometheus is still missing" in done.stderr
    assert machine.dev("setup").returncode == 0  # not strict: the same machine goes on
    machine.apt_installs()
    machine.fake("npm", 1)
    shutil.rmtree(machine.repo / "examples/node/node_modules")
    done = machine.dev("setup", PGCREDIT_STRICT_SETUP="1")
    assert done.returncode == 1 and "ERROR: npm ci failed" in done.stderr


def test_strict_goes_on_where_the_machine_allows_no_install(machine):
    machine.user(1000)
    done = machine.dev("setup", PGCREDIT_STRICT_SETUP="1")
    assert done.returncode == 0 and "NOTICE: not installing" in done.stderr


def test_strict_checks_on_every_run_not_once(machine):
    machine.dev("test")
    assert _installs(machine.calls())
    (machine.root / "usr/share/postgresql/15/extension/plproxy.control").unlink()  # removed since
    machine.dev("test")
    assert machine.calls() == []  # the stamp: not strict, not checked again
    machine.dev("test", PGCREDIT_STRICT_SETUP="1")
    assert _installs(machine.calls()) == [["-y", "-q", "--no-install-recommends", "postgresql-15-plproxy"]]


def test_npm_missing_or_failing_is_a_notice(machine):
    (machine.bin / "npm").unlink()
    done = machine.dev("setup")
    assert done.returncode == 0 and "npm is missing" in done.stderr
    machine.fake("npm", 1)
    done = machine.dev("setup")
    assert done.returncode == 0 and "npm ci failed" in done.stderr


def test_test_and_demo_set_up_once_then_again_when_dev_changes(machine):
    """The stamp: a second `./dev test` asks apt-get nothing. (python3 is not
    among the stand-ins, so the command fails after the set-up, as it should
    on a machine without Python.)"""
    machine.dev("test")
    assert _installs(machine.calls())
    machine.dev("test")
    assert machine.calls() == []
    machine.dev("demo")
    assert machine.calls() == []
    stamp = machine.repo / ".venv" / ".system-packages"
    os.utime(stamp, (1, 1))  # ./dev is newer than the stamp: it changed since
    (machine.root / "usr/share/postgresql/15/extension/plproxy.control").unlink()
    machine.dev("demo")
    assert _installs(machine.calls())
    assert machine.dev("test", PGCREDIT_NO_SYSTEM_SETUP="1").stderr.count("./dev:") == 0


def test_other_commands_leave_the_system_alone(machine):
    machine.dev("reference")
    assert machine.calls() == []


def test_ci_runs_the_readme_test_command_and_nothing_else():
    readme = (REPO / "README.md").read_text()
    quick_start = re.search(r"## Quick start.*?```sh\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in quick_start.splitlines() if line.strip()]
    assert commands == ["./dev demo", "./dev test"]
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert ci == ["set -eu", 'cd "$(dirname "$0")/.."', "PGCREDIT_STRICT_SETUP=1 ./dev test"]
