"""A tiny run of each benchmark in bench/, so they keep working. No timing is asserted: only that
each run finished and produced well-formed numbers (benchmarks are not tests)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


@pytest.mark.browser
def test_browser_bench_runs_all_three_pages(tmp_path):
    import browser

    out = browser.main(["--rates", "1000", "--tokens", "40", "--runs", "1", "--peer-runs", "1", "--budget", "60",
                        "--out", str(tmp_path / "browser.md")])
    results = json.loads(out.with_suffix(".json").read_text())
    assert sorted(r["page"] for r in results) == ["callback_handler", "ours", "write_stream"]
    for r in results:
        assert r["outcome"] == "finished", r
        for key in ("ttft_overhead_ms", "drain_lag_ms", "wire_amplification", "server_cpu_s", "browser_task_s"):
            assert math.isfinite(r[key]), (key, r)
        assert r["wire_amplification"] > 0.5 and r["server_cpu_s"] >= 0
    assert "| 1,000 | 40 | ours | 1/1 |" in out.read_text()


@pytest.mark.browser
def test_engine_bench_compares_ours_with_bare_llama_cpp(tmp_path):
    import engine

    out = engine.main(["--tokens", "8", "--runs", "1", "--pp-tokens", "32", "--sessions", "2",
                       "--out", str(tmp_path / "engine.md")])
    data = json.loads(out.with_suffix(".json").read_text())
    [row] = data["generation"]
    assert row[0] == "8" and row[-1] == "8"  # both loops produced exactly the tokens asked for
    assert all(number(cell) > 0 for cell in row[1:7])
    assert data["pp_rate"] > 0
    assert all(number(r[1]) > 0 and number(r[2]) > 0 for r in data["load"])
    assert all(number(r[1]) > 0 for r in data["memory"])


def test_server_bench_streams_and_refuses_past_the_queue(tmp_path):
    import server

    out = server.main(["--clients", "4", "--tokens", "50", "--rounds", "1", "--local-extra", "1", "--queue-size", "1",
                       "--local-tokens", "4", "--out", str(tmp_path / "server.md")])
    text = out.read_text()
    assert "| 4 | 1 | 4/4 | 4/4 |" in text  # every stream complete and byte-exact
    assert "1 refused with 429" in text and "error shape: yes" in text
    raw = json.loads(out.with_suffix(".json").read_text())
    assert raw["4-0"]["errors"] == [] and raw["4-0"]["peak"] > 0
