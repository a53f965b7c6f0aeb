"""ops/prometheus: the alert rules pass `promtool check rules` and their unit
tests (`promtool test rules`), the unit tests catch a wrong threshold, every
alert is tested and has a runbook section, and the rules read only metrics
that pgcredit exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from support.ops_tools import OPS, tool
from pgcredit.metrics import ClientMetrics

RULES = OPS / "prometheus" / "pgcredit-alerts.yml"
TESTS = OPS / "prometheus" / "pgcredit-alerts.test.yml"
QUERIES = OPS / "postgres_exporter" / "queries.yaml"
OPERATIONS = Path(__file__).resolve().parents[2] / "OPERATIONS.md"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("promtool", package="prometheus"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def alert_names(text: str) -> list[str]:
    return re.findall(r"^\s*- alert: (\w+)$", text, re.M)


def test_rules_are_valid_and_their_unit_tests_pass():
    checked = promtool("check", "rules", RULES.name, cwd=RULES.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_names(RULES.read_text()))} rules found" in checked.stdout
    tested = promtool("test", "rules", TESTS.name, cwd=TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@pytest.mark.parametrize("wrong", [
    ("> 0.01", "> 0.05"),            # retry failures over 5% instead of 1%
    ("> 0.1\n", "> 0.5\n"),          # lock waits over 500 ms instead of 100 ms
    ("> 300", "> 3000"),             # sweeps behind by 50 minutes instead of 5
    ("> 180", "> 1800"),             # events waiting 30 minutes instead of 3
    ('{code!="overdue"}', ""),       # overdue refusals counted twice
])
def test_unit_tests_catch_a_wrong_rule(tmp_path, wrong):
    old, new = wrong
    text = RULES.read_text()
    assert old in text
    (tmp_path / RULES.name).write_text(text.replace(old, new, 1))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    tested = promtool("test", "rules", TESTS.name, cwd=tmp_path)
    assert tested.returncode != 0 and "FAILED" in tested.stdout + tested.stderr


def test_every_alert_is_unit_tested_and_has_a_runbook():
    tests = TESTS.read_text()
    runbook = OPERATIONS.read_text()
    headings = {re.sub(r"[^a-z0-9]", "", h.lower()) for h in re.findall(r"^#+ (.+)$", runbook, re.M)}
    names = alert_names(RULES.read_text())
    assert len(names) == 11
    for name in names:
        assert re.search(rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels", tests), f"{name} never fires in a test"
        assert f'runbook: "OPERATIONS.md#{name.lower()}"' in RULES.read_text()
        assert name.lower() in headings, f"OPERATIONS.md has no section {name}"


def _exported_names() -> set[str]:
    """<key>_<column> for every non-LABEL column of queries.yaml."""
    names, key, column = set(), None, None
    for line in QUERIES.read_text().splitlines():
        if m := re.match(r"^(pgcredit\w*):$", line):
            key = m.group(1)
        elif m := re.match(r"^    - (\w+):$", line):
            column = m.group(1)
        elif m := re.match(r'^        usage: "(\w+)"$', line):
            if m.group(1) != "LABEL":
                names.add(f"{key}_{column}")
    return names


def test_rules_read_only_metrics_that_exist():
    client = {m.name for m in ClientMetrics(CollectorRegistry()).registry.collect()}
    client = {f"{n}_total" if n in ("pgcredit_client_retries", "pgcredit_client_busy") else n for n in client}
    client |= {f"pgcredit_client_call_duration_seconds_{s}" for s in ("bucket", "count", "sum")}
    exported = _exported_names()
    assert len(exported) == 20
    rule_lines = [line for line in RULES.read_text().splitlines()
                  if not line.lstrip().startswith(("#", "runbook"))]
    used = set(re.findall(r"\b(pgcredit_\w+)", "\n".join(rule_lines)))
    assert used - exported - client == set()
