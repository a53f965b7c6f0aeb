"""The bench's SQL lives in files shipped with the package (bench_sql/): what
the Python side assumes of them."""

from __future__ import annotations

import re

from pgcredit.tools.bench import BASELINE_SQL, BATCH, SCRIPTS, SPREAD_GROUP


def test_the_batch_scripts_send_batch_items():
    """Items per call are counted as BATCH: every array a batch script builds has that many."""
    batches = [name for name in SCRIPTS if "batch" in name]
    assert batches
    for name in batches:
        sizes = [int(a or b) for a, b in re.findall(r"ARRAY\[(\d+)\]|generate_series\(1, (\d+)\)", SCRIPTS[name])]
        assert len(sizes) >= 4 and set(sizes) == {BATCH}, name


def test_every_workload_run_side_by_side_has_its_script_and_baseline():
    assert set(SPREAD_GROUP) <= set(SCRIPTS)
    for function in ("bench.cte_reserve", "bench.model_reserve", "bench.naive_reserve"):
        assert f"CREATE FUNCTION {function}(" in BASELINE_SQL
        assert any(function in script for script in SCRIPTS.values()), function
