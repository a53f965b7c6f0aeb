"""The operations tools the suite runs for real (Debian packages, installed by
./dev test as root with apt-get): found here, or a visible skip naming what is
missing."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

OPS = Path(__file__).resolve().parents[2] / "ops"


def tool(*names: str, package: str) -> str:
    """The path of the first of names on PATH, else skip the test, saying which package is missing."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"{' / '.join(names)} not found: install the Debian package {package} (./dev test does as root with apt-get)")


def free_port() -> int:
    """A TCP port free on the loopback interface just now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    """Prometheus text exposition: {(name, frozenset(label pairs)): value}. Enough
    for the exporter's output (no escaped quotes or commas in our label values)."""
    samples: dict[tuple[str, frozenset], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        if "{" in series:
            name, labels = series[:-1].split("{", 1)
            pairs = frozenset(tuple(p.split("=", 1)) for p in labels.split(",") if p)
            pairs = frozenset((k, v.strip('"')) for k, v in pairs)
        else:
            name, pairs = series, frozenset()
        samples[(name, pairs)] = float(value)
    return samples
