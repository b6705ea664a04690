"""bench/run_all.py: the arithmetic of its table (fixed inputs) and its process handling.

The full ``--quick`` run takes more than a minute on two shared cores, so it is not run here;
instead the summing, ratio, slope, table and comparison helpers are checked on fixed rows, the
process runner on tiny Python commands, and one real benchmark (flow decoding, a few thousand
flows) through the same path ``run_all`` takes.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from tests.benchkit import load_bench

run_all = load_bench("run_all")

ROWS = [
    {"stage": "log parse", "side": "orbwatch", "name": "a", "rows": 1000, "seconds": 1.0,
     "peak_mib": 300.0, "process_peak_mib": 900.0},
    {"stage": "log parse", "side": "orbwatch", "name": "b", "rows": 3000, "seconds": 1.0,
     "peak_mib": 500.0, "process_peak_mib": 900.0},
    {"stage": "log parse", "side": "yardstick", "name": "re a", "rows": 500, "seconds": 1.0},
    {"stage": "log parse", "side": "yardstick", "name": "re b", "rows": 500, "seconds": 1.0},
    {"stage": "log parse", "side": "detail", "name": "ignored", "rows": 10**9, "seconds": 1e-9},
    {"stage": "flow decode", "side": "orbwatch", "name": "v9", "rows": 2000, "seconds": 2.0,
     "process_peak_mib": 120.0},
    {"stage": "flow decode", "side": "yardstick", "name": "netflow", "rows": 0, "seconds": 0.0,
     "missing": "the netflow package is not installed"},
    {"stage": "simulate", "side": "orbwatch", "name": "sim", "rows": 50, "seconds": 5.0},
]  # fmt: skip


def test_summarise_sums_each_side_and_keeps_isolated_peaks() -> None:
    results = {r.stage: r for r in run_all.summarise(ROWS, 4.0)}
    logs = results["log parse"]
    assert (logs.rows, logs.seconds, logs.scale) == (4000, 2.0, 4.0)
    assert logs.rate == 2000.0 and logs.yardstick_rate == 500.0
    assert logs.ratio == pytest.approx(4.0)
    assert logs.peak_mib == 500.0  # the rows' own peaks, not their parent process's 900
    assert results["flow decode"].peak_mib == 120.0  # no own peak: the process's
    assert results["flow decode"].ratio is None
    assert results["flow decode"].missing == "the netflow package is not installed"
    assert results["simulate"].missing == "the benchmark measured no yardstick"


@pytest.mark.parametrize(("power", "expected"), [(1.0, 1.0), (2.0, 2.0), (0.0, 0.0), (0.5, 0.5)])
def test_slope_recovers_the_exponent(power: float, expected: float) -> None:
    points = [(n, 0.01 * n**power) for n in (1_000, 4_000, 16_000)]
    assert run_all.slope(points) == pytest.approx(expected)


def test_slope_needs_two_sizes_and_positive_values() -> None:
    assert run_all.slope([(1000, 1.0)]) is None
    assert run_all.slope([(1000, 1.0), (1000, 2.0)]) is None
    assert run_all.slope([(0, 1.0), (1000, 0.0)]) is None
    noisy = run_all.slope([(1, 1.0), (4, 3.0), (16, 17.0)])
    assert noisy is not None and 0.9 < noisy < 1.1


def test_slopes_per_stage_skip_failed_runs() -> None:
    result = run_all.StageResult
    results = [
        result("detect", 1.0, rows=100, seconds=1.0),
        result("detect", 4.0, rows=400, seconds=2.0),
        result("detect", 16.0, error="exit status 1: boom"),
        result("enrich", 1.0, rows=100, seconds=1.0),
    ]
    found = run_all.slopes(results)
    assert found["detect"]["overall"] == pytest.approx(0.5)
    assert found["enrich"] == {"overall": None, "largest": None}


def test_largest_slope_is_the_last_step() -> None:
    result = run_all.StageResult
    fixed_cost = [result("logs", float(k), rows=k * 100, seconds=10 + k) for k in (1, 4, 16, 64)]
    found = run_all.slopes(fixed_cost)["logs"]
    assert found["overall"] < found["largest"] < 1.0
    assert found["largest"] == pytest.approx(math.log(74 / 26) / math.log(4))
    assert "* logs: 0.46; 0.75" in run_all.growth({"logs": found})


def test_table_gives_each_missing_ratio_and_failure_a_reason() -> None:
    results = run_all.summarise(ROWS, 1.0)
    results.append(run_all.StageResult("detect", 1.0, error="exit status 1: MemoryError"))
    text = "\n".join(run_all.table(results))
    assert "| log parse | 1x | 4,000 | 2.00 | 2,000 | 500 | 500 | 4x |" in text
    assert "| flow decode | 1x | 2,000 | 2.00 | 1,000 | 120 | - | n/a |" in text
    assert "* flow decode: no ratio: the netflow package is not installed" in text
    assert "* detect: failed: exit status 1: MemoryError" in text


def test_ratio_keeps_three_significant_digits() -> None:
    slow = run_all.StageResult("detect", 1.0, rows=100, seconds=100.0, yardstick_rows=100,
                               yardstick_seconds=0.2)  # fmt: skip
    assert "| 0.002x |" in run_all.table([slow])[2]


def test_compare_reports_the_change_per_stage_and_scale() -> None:
    old = {
        "commit": "abc1234",
        "date": "2026-01-01",
        "results": [{"stage": "enrich", "scale": 1.0, "rows_per_s": 1000.0, "peak_mib": 100.0}],
    }
    new = {"results": [
        {"stage": "enrich", "scale": 1.0, "rows_per_s": 1500.0, "peak_mib": 90.0},
        {"stage": "detect", "scale": 1.0, "rows_per_s": 10.0, "peak_mib": 1.0}]}  # fmt: skip
    lines = run_all.compare(old, new)
    assert lines[0] == "Compared with abc1234 (2026-01-01):"
    assert "| enrich | 1x | 1,000 | 1,500 | +50% | 100 | 90 |" in lines
    assert not any(line.startswith("| detect") for line in lines)  # not in the old run


def test_parse_scales() -> None:
    assert run_all.parse_scales("1,4,16") == [1.0, 4.0, 16.0]
    with pytest.raises(Exception, match="positive"):
        run_all.parse_scales("1,-4")


def _python_step(tmp: Path, code: str) -> list[object]:
    out = tmp / "rows.json"
    return [run_all.Step([sys.executable, "-c", code, str(out)], out)]


WRITE_ROWS = (
    "import json, sys; block = bytearray(80 * 2**20); "
    "rows = [{'stage': 'fake', 'side': 'orbwatch', 'name': 'x', 'rows': 10, 'seconds': 0.5}, "
    "{'stage': 'fake', 'side': 'yardstick', 'name': 'y', 'rows': 10, 'seconds': 1.0}]; "
    "open(sys.argv[1], 'w').write(json.dumps({'rows': rows}))"
)


def test_run_stage_measures_each_process_peak(tmp_path: Path) -> None:
    stage = run_all.Stage("fake", ("fake",), "things", 1, 1,
                          lambda n, tmp, quick: _python_step(tmp, WRITE_ROWS))  # fmt: skip
    rows = run_all.run_stage(stage, 1.0, False, tmp_path)
    assert [r["side"] for r in rows] == ["orbwatch", "yardstick"]
    assert all(r["process_peak_mib"] >= 80 for r in rows)  # the 80 MiB the child touched
    (result,) = run_all.summarise(rows, 1.0)
    assert result.ratio == pytest.approx(2.0)


def test_run_stage_turns_a_failure_into_error_rows(tmp_path: Path) -> None:
    fail = "raise SystemExit('no data')"
    stage = run_all.Stage("fake", ("fake a", "fake b"), "things", 1, 1,
                          lambda n, tmp, quick: _python_step(tmp, fail))  # fmt: skip
    rows = run_all.run_stage(stage, 1.0, False, tmp_path)
    assert [r["stage"] for r in rows] == ["fake a", "fake b"]
    assert rows[0]["error"] == "exit status 1: no data"


def test_main_writes_the_json_that_compare_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def steps(n: int, tmp: Path, quick: bool) -> list[object]:
        code = WRITE_ROWS.replace("'rows': 10, 'seconds': 0.5", f"'rows': {n}, 'seconds': 0.5")
        return _python_step(tmp, code)

    monkeypatch.setattr(run_all, "STAGES", (run_all.Stage("fake", ("fake",), "x", 10, 2, steps),))
    out = tmp_path / "results.json"
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--scales", "1,4", "--json", str(out)])
    run_all.main()
    doc = json.loads(out.read_text())
    assert [r["rows"] for r in doc["results"]] == [10, 40]
    assert doc["slopes"]["fake"]["overall"] == pytest.approx(0.0)  # same seconds, both sizes
    assert len(doc["load_start"]) == 3 and len(doc["load_end"]) == 3
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--quick", "--json", str(out),
                                      "--compare", str(out)])  # fmt: skip
    run_all.main()
    printed = capsys.readouterr().out
    assert "| fake | 1x | 2 | 0.50 | 4 |" in printed
    assert "| fake | 1x | 20 | 4 | -80% |" in printed  # 1x was 10 rows in 0.5 s, now 2


def test_flow_decode_bench_speaks_the_row_format(tmp_path: Path) -> None:
    flows = next(s for s in run_all.STAGES if s.key == "flows")
    rows = run_all.run_stage(flows, 3000 / flows.base, False, tmp_path)
    (result,) = run_all.summarise(rows, 1.0)
    assert result.stage == "flow decode"
    assert result.rows == 2 * 3000  # NetFlow v9 and IPFIX, messages to flows rows
    assert result.rate is not None and result.peak_mib is not None and result.peak_mib > 0
    assert result.ratio is not None or "netflow" in str(result.missing)
    assert math.isfinite(result.seconds)
