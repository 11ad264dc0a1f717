"""The one-command GPU check runs whole on a CPU with --tiny and writes the JSON schema the lead reads."""
from __future__ import annotations

import json

from onestep.benchmarks.perf import gpu_check
from onestep.methods.plugin import available_methods


def test_gpu_check_tiny_runs_every_part_and_covers_every_method(tmp_path, capsys):
    # budgets stretched: a loaded CI machine must not turn this check of the code path into skips
    rc = gpu_check.main(["--out", str(tmp_path), "--tiny", "--device", "cpu", "--budget-scale", "100"])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    text = capsys.readouterr().out
    assert rc == 0, {k: report[k].get("error") for k in gpu_check.SECTIONS}
    assert set(gpu_check.SECTIONS) <= set(report) and report["env"]["tiny"]
    for label in gpu_check.PARITY_NETWORKS:  # CPU vs CPU here: the code path, not the figure
        row = report["parity"][label]
        assert row["device_fp32_strict"] == 0.0 and 0 <= row["device_bf16_autocast"] < 0.1
    thr = report["throughput"]
    assert thr["methods"] == sorted(available_methods())  # every registered plugin, none forgotten
    for name in thr["methods"]:
        row = thr[name]
        assert "images_per_s" in row or "message" in row, name
        if "images_per_s" in row:
            assert row["images_per_s"] > 0 and row["batch_per_gpu"] == 8
    assert thr["gdd"]["paper"]["img_s_per_gpu"] == round(5e6 / 6 / 3600 / 8, 1)
    fid = report["fid50k"]
    assert fid["n"] == 12 and fid["untrained"] and fid["met"] is None
    one = report["one_pass"]
    assert one["agree"] and one["n"] == 12 and one["harness_over_bare"] > 0 and one["target_ratio"] == 3.0
    rows = report["sampling"]["rows"].values()  # own rows, or sfd's sampling_speed once merged
    assert {1, 35} <= {r["nfe"] for r in rows} and all(r["images_per_s"] > 0 for r in rows)
    assert "throughput (img/s per GPU)" in text and "gdd" in text


def test_a_spent_budget_skips_parts_with_a_message(tmp_path, capsys):
    rc = gpu_check.main(["--out", str(tmp_path), "--tiny", "--device", "cpu", "--budget-scale", "0"])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rc == 0
    for part in gpu_check.SECTIONS:
        assert report[part]["message"].startswith("skipped:"), part
    assert "skipped" in capsys.readouterr().out


def test_cifar_plan_uses_the_papers_per_gpu_batch():
    methods = available_methods()
    plan = gpu_check._plan("gdd", methods["gdd"], tiny=False)
    assert plan["preset"] == "cifar10-uncond" and plan["batch"] == 256 // 8
    over = gpu_check._offline_overrides(methods["gdd"].Config)
    assert over["method.discriminator.random_weights"] is True


def test_a_method_without_a_cifar_preset_gets_a_message_not_a_crash(tmp_path):
    class NoCifar:
        presets = {"smoke": {}}

    plan = gpu_check._plan("no-such-method", NoCifar, tiny=False)
    assert "no CIFAR-10 paper preset" in plan["message"]


def test_sampling_uses_sfd_sampling_speed_when_importable(monkeypatch):
    """At merge, engineer sfd's sampling_speed.measure() feeds the section (its schema mapped)."""
    import sys
    import types

    calls = []

    def measure(net, batch, device, repeats, nfes=(1, 2, 3, 4, 5)):
        calls.append((batch, tuple(nfes)))
        rows = {"heun-35": {"nfe": 35, "seconds": 3.5, "images_per_s": batch / 3.5, "speedup": 1.0}}
        rows.update({f"sfd-nfe{n}": {"nfe": n, "seconds": 0.1 * n, "images_per_s": batch / (0.1 * n), "speedup": 35 / n}
                     for n in nfes})
        return {"batch": batch, "device": str(device), "forward_seconds": 0.1, "rows": rows}

    monkeypatch.setitem(sys.modules, "onestep.benchmarks.perf.sampling_speed", types.SimpleNamespace(measure=measure))
    import torch

    out = gpu_check.sampling_measure(torch.device("cpu"), True, gpu_check.Budget(10))
    assert calls == [(4, (1, 2, 4))] and out["source"].endswith("sampling_speed.measure")
    assert out["rows"]["teacher heun 18 (35 NFE)"]["over_heun35"] == 1.0
    assert out["rows"]["sfd-nfe1 (1 NFE)"]["over_heun35"] == 35.0
