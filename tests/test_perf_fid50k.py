"""The FID-50k timing script runs end to end (here on CPU, a few images) and labels random weights."""
from __future__ import annotations

import json
import math

from onestep.benchmarks.perf import fid50k


def test_fid_script_times_a_cifar_sized_one_step_generator(tmp_path, capsys):
    out = tmp_path / "fid.json"
    rc = fid50k.main(["--device", "cpu", "--n", "12", "--batch", "6", "--random-weights", "--reference-n", "24",
                      "--json", str(out)])
    figures = json.loads(out.read_text())
    text = capsys.readouterr().out
    assert rc == 0 and figures["n"] == 12 and figures["seconds"] > 0
    assert figures["untrained"] and "UNTRAINED" in text and math.isfinite(figures["fid"])
    assert "55.7M-parameter one-step generator" in text  # EDM's CIFAR-10 DDPM++ in OneStepPrecond
