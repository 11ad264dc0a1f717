"""The one-pass benchmark script runs end to end on random-weight files and reports agreement."""
from __future__ import annotations

import json

from onestep.benchmarks.perf import metrics_one_pass


def test_benchmark_runs_and_both_paths_agree(tmp_path, capsys):
    out = tmp_path / "figures.json"
    rc = metrics_one_pass.main(["--n", "12", "--batch", "12", "--memory-n", "300", "--random-weights",
                                "--json", str(out)])
    figures = json.loads(out.read_text())
    text = capsys.readouterr().out
    assert rc == 0 and figures["speed"]["agree"]
    assert figures["speed"]["harness"]["untrained"] and "UNTRAINED" in text
    assert set(figures["speed"]["seconds"]) == {"harness_cold", "harness_warm", "naive"}
    assert {"write_png", "clean_fid_clip"} <= set(figures["speed"]["naive_stages_s"])
    for kind in ("prc", "kid"):
        mem = figures[f"memory_{kind}"]
        assert mem["n"] == 300 and mem["peak_gb"] >= mem["features_gb"] > 0
