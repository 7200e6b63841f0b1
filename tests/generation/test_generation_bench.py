"""A tiny run of bench/durable.py, so it keeps working. No timing is asserted (benchmarks are not tests):
only that it finished, every generation completed with its exact text, and no append failed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def test_durable_bench_runs_both_paths_and_the_load(tmp_path):
    import durable

    out = durable.main(
        [
            "--runs",
            "1",
            "--tokens",
            "20",
            "--rate",
            "500",
            "--generations",
            "4",
            "--load-tokens",
            "20",
            "--load-rate",
            "200",
            "--coalesce",
            "50",
            "--no-postgres",
            "--out",
            str(tmp_path / "durable.md"),
        ]
    )
    data = json.loads(out.with_suffix(".json").read_text())
    [run] = data["latency"]["SQLite"]["log"]
    assert run["ttft_ms"] >= 0 and run["drain_lag_ms"] is not None
    load = data["load"]["SQLite-50"]
    assert load["complete"] == load["exact"] == 4 and load["errors"] == {"locked": 0, "other": 0}
    assert load["appends"] >= 4 and "| SQLite | log (SQLite) | 1 |" in out.read_text()
