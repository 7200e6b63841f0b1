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

    out = browser.main(
        [
            "--rates",
            "1000",
            "--tokens",
            "40",
            "--runs",
            "1",
            "--peer-runs",
            "1",
            "--budget",
            "60",
            "--out",
            str(tmp_path / "browser.md"),
        ]
    )
    results = json.loads(out.with_suffix(".json").read_text())
    assert sorted(r["page"] for r in results) == ["callback_handler", "direct", "ours", "write_stream"]
    for r in results:
        assert r["outcome"] == "finished", r
        for key in ("ttft_overhead_ms", "drain_lag_ms", "wire_amplification", "server_cpu_s", "browser_task_s"):
            assert math.isfinite(r[key]), (key, r)
        assert r["wire_amplification"] > 0.5 and r["server_cpu_s"] >= 0
    assert "| 1,000 | 40 | ours | 1/1 |" in out.read_text()


def test_engine_bench_compares_ours_bare_and_llama_cpp_server(tmp_path):
    import engine

    out = engine.main(
        [
            "--models",
            "smollm2",
            "--batches",
            "1,2",
            "--tokens",
            "6",
            "--runs",
            "1",
            "--history",
            "0,200",
            "--ttft-runs",
            "1",
            "--out",
            str(tmp_path / "engine.md"),
        ]
    )
    data = json.loads(out.with_suffix(".json").read_text())
    assert [r[:2] for r in data["throughput"]] == [["smollm2", "1"], ["smollm2", "2"]]
    for row in data["throughput"]:
        assert all(number(cell) > 0 for cell in row[2:8])  # per-stream and aggregate, all three engines
    assert [r[:2] for r in data["ttft"]] == [["smollm2", "0"], ["smollm2", "200"]]
    assert all(number(cell) > 0 for r in data["ttft"] for cell in r[3:5])


def test_server_bench_streams_and_refuses_past_the_queue(tmp_path):
    import server

    out = server.main(
        [
            "--clients",
            "4",
            "--servers",
            "granian:1,uvicorn:1",
            "--tokens",
            "50",
            "--rounds",
            "1",
            "--local-extra",
            "1",
            "--queue-size",
            "1",
            "--local-parallel",
            "1",
            "--local-tokens",
            "4",
            "--share-clients",
            "2",
            "--share-tokens",
            "4",
            "--out",
            str(tmp_path / "server.md"),
        ]
    )
    text = out.read_text()
    for name in ("granian", "uvicorn"):
        assert f"| {name} | 4 | 1 | 4/4 | 4/4 |" in text  # every stream complete and byte-exact
    assert "1 refused with 429" in text and "error shape: yes" in text
    raw = json.loads(out.with_suffix(".json").read_text())
    assert raw["granian-4-0"]["errors"] == [] and raw["granian-4-0"]["peak"] > 0


@pytest.mark.browser
def test_long_chat_bench_runs_the_page_before_and_after(tmp_path):
    import long_chat

    out = long_chat.main(["--sizes", "4", "--runs", "1", "--budget", "60", "--out", str(tmp_path / "long_chat.md")])
    results = json.loads(out.with_suffix(".json").read_text())
    assert sorted(r["version"] for r in results) == ["after", "before"]
    for r in results:
        assert r["size"] == 4 and r["ws_bytes"] > 0
        assert all(math.isfinite(r[k]) and r[k] >= 0 for k in ("load_ms", "first_ms", "complete_ms", "stream_ms")), r
    assert "| 4 | after | 1 |" in out.read_text()


def test_sanitize_bench_times_both_sanitisers(tmp_path):
    import sanitize

    out = sanitize.main(
        [
            "--sizes",
            "0.5,2",
            "--runs",
            "1",
            "--answers",
            "1",
            "--answer-kb",
            "2",
            "--out",
            str(tmp_path / "sanitize.md"),
        ]
    )
    data = json.loads(out.with_suffix(".json").read_text())
    assert sorted(data["calls"]) == ["0.5", "2.0"]
    assert all(math.isfinite(t) and t > 0 for sides in data["calls"].values() for t in sides.values())
    assert sorted(data["calls"]["2.0"]) == ["after median", "after min", "before median", "before min"]
    assert sorted(data["streamed"]) == ["after", "before", "none"] and data["pieces"] > 100


@pytest.mark.browser
def test_reattach_bench_times_a_reload_mid_answer(tmp_path):
    import reattach

    out = reattach.main(["--reloads", "1", "--rate", "40", "--out", str(tmp_path / "reattach.md")])
    data = json.loads(out.with_suffix(".json").read_text())
    [reload] = data["reloads"]
    assert 0 < reload["first_ms"] <= reload["live_ms"] and len(data["idle_load_ms"]) == 3
    assert "| reload → first re-attached text | 1 |" in out.read_text()
