"""benchmarks/perf/report_render.py runs end to end on a small synthetic store and prints its
figures (the 1,000-run measurement itself is the script's job, not a test's)."""
from __future__ import annotations

from onestep.benchmarks.perf import report_render


def test_report_render_benchmark_runs_and_prints_the_ratio(capsys, tmp_path):
    code = report_render.main(["--runs", "40", "--keep", str(tmp_path / "store")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "re-render, store unchanged" in out and "PASS" in out
    assert (tmp_path / "store" / "report" / "index.html").exists()
    # the unchanged re-render drew nothing: "0/<cached>"
    line = next(ln for ln in out.splitlines() if ln.startswith("re-render, store unchanged"))
    assert line.split()[-1].startswith("0/")
