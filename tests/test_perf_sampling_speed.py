"""The sampling-speed script runs end to end (no timing asserts: speed targets are read from
its printed ratios, docs/ARCHITECTURE.md)."""
import json

from onestep.benchmarks.perf import sampling_speed


def test_sampling_speed_tiny_runs_and_reports_ratios(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert sampling_speed.main(["--tiny", "--batch", "16", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "one-step: " in text and "NFE 3: " in text
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert rows["heun-35"]["nfe"] == 35 and rows["sfd-nfe1"]["nfe"] == 1 and rows["sfd-nfe3"]["nfe"] == 3
    assert all(r["images_per_s"] > 0 for r in rows.values())
