"""The real pipeline (training loop, metrics harness, sample grid) through the runner: a run
interrupted mid-training resumes from the loop's checkpoint and ends exactly where an
uninterrupted run ends."""
from __future__ import annotations

import json

import pytest

from onestep.benchmarks import training
from onestep.benchmarks.runner import Pipeline, execute_run
from onestep.benchmarks.store import ResultsStore
from onestep.benchmarks.suites import expand_runs, load_suite


def _edm_smoke_run():
    # The `edm` smoke preset needs no teacher (it trains a tiny denoiser: 30 steps, checkpoints every 10).
    suite = load_suite({
        "name": "real", "teacher": None,
        "methods": [{"method": "edm", "preset": "smoke"}],
        "evaluation": {"metrics": ["fd_digits"], "n_samples": 200, "seeds": "0-199", "every_kimg": 0.64,
                       "periodic_n_samples": 150, "grid_samples": 16, "batch_size": 200},
    })
    (spec,) = expand_runs(suite)
    return spec


class Interrupt(KeyboardInterrupt):
    pass


def test_interrupted_real_run_resumes_bit_identically(tmp_path, monkeypatch):
    spec = _edm_smoke_run()
    pipeline = Pipeline("cpu")
    reference = ResultsStore(tmp_path / "uninterrupted")
    assert execute_run(spec, reference, pipeline) == "complete"
    ref_final = reference.run(spec.run_id).final()

    real_train = training.train

    def train_then_die(*args, **kwargs):
        outer = kwargs.get("on_step")

        def on_step(step, nimg):
            if outer:
                outer(step, nimg)
            if step == 15:  # after the checkpoint at step 10, before the one at 20
                raise Interrupt()

        kwargs["on_step"] = on_step
        return real_train(*args, **kwargs)

    store = ResultsStore(tmp_path / "store")
    monkeypatch.setattr(training, "train", train_then_die)
    with pytest.raises(KeyboardInterrupt):
        execute_run(spec, store, pipeline)
    run = store.run(spec.run_id)
    assert run.state().state == "interrupted" and not run.final_file.exists()
    monkeypatch.setattr(training, "train", real_train)
    assert execute_run(spec, store, pipeline) == "complete"
    final = run.final()
    assert final["train"]["resumed_from_step"] == 10
    assert final["train"]["steps"] == ref_final["train"]["steps"] == 30
    assert final["nfe"] == ref_final["nfe"] == 35  # the edm generator: Heun with 18 steps (2 * 18 - 1 evaluations)
    assert final["metrics"]["fd_digits"] == ref_final["metrics"]["fd_digits"]
    assert 0 < final["metrics"]["fd_digits"] < 1e4 and final["metric_details"]["repeat0"]["fd_digits"]["n"] == 200
    # The periodic curve (FD vs training images) has one point per eval, no duplicates after the resume.
    series = [(r["kimg"], r["fd_digits"]) for r in run.metrics()]
    ref_series = [(r["kimg"], r["fd_digits"]) for r in reference.run(spec.run_id).metrics()]
    assert [k for k, _ in series] == [0.64, 1.28, 1.92] and series == ref_series
    assert final["best"]["metric"] == "fd_digits" and final["best"]["value"] == min(v for _, v in series)
    assert run.samples_file.read_bytes()[:4] == b"\x89PNG"
    assert (run.checkpoint_dir / "best" / "generator.json").exists()
    assert json.loads(run.provenance_file.read_text())["attempts"][-1]["attempt"] == 2
