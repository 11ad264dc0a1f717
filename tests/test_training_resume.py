"""Resume: interrupted runs (exception, kill -9, crash while writing a checkpoint) continue from
their last checkpoint and reach bit-identical weights on the CPU; other configs are refused."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from onestep.benchmarks.datasets import load_digits
from onestep.benchmarks.training import RESUME_FILE, ResumeMismatchError, data_spec_of, instantiate_method, train
from onestep.methods.checkpoints import load_resume_state

# 12 steps of batch 16 on 64 images (epochs wrap), checkpoints every 3 steps, width-8 network.
TINY = {"method.network_overrides": {"model_channels": 8}, "loop.batch_size": 16, "loop.total_kimg": 0.192,
        "loop.checkpoint_kimg": 0.048, "loop.log_kimg": 0.048, "loop.snapshot_kimg": 0.096}
TOTAL_STEPS = 12


def tiny_data():
    return load_digits(8, 1, "all").subset(range(64), name="digits-64")


def tiny_method(extra=None):
    data = tiny_data()
    method, loop = instantiate_method("edm", "smoke", {**TINY, **(extra or {})}, data_spec=data_spec_of(data))
    return method, loop, data


def final_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the final resume state: method modules, optimizer state, EMA."""
    state = load_resume_state(run_dir / RESUME_FILE)
    assert state["step"] == TOTAL_STEPS
    out = {}

    def walk(obj, prefix):
        if isinstance(obj, torch.Tensor):
            out[prefix] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{prefix}.{k}")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{prefix}[{i}]")

    walk({"method": state["method"], "ema": state["ema"]}, "")
    return out


def assert_bit_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, f"{len(differing)} tensors differ, e.g. {differing[:3]}"


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> dict[str, torch.Tensor]:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    method, loop, data = tiny_method()
    result = train(method, data, loop, run_dir, log=lambda s: None)
    assert result.step == TOTAL_STEPS and result.resumed_from_step is None
    return final_tensors(run_dir)


class Interrupt(Exception):
    pass


def test_resume_after_exception_is_bit_identical(tmp_path, reference_run):
    method, loop, data = tiny_method()

    def stop(step, nimg):
        if step == 7:  # not a checkpoint step: steps 7 is redone from the step-6 checkpoint
            raise Interrupt

    with pytest.raises(Interrupt):
        train(method, data, loop, tmp_path, on_step=stop, log=lambda s: None)
    assert load_resume_state(tmp_path / RESUME_FILE)["step"] == 6

    method2, loop2, data2 = tiny_method()
    result = train(method2, data2, loop2, tmp_path, log=lambda s: None)
    assert result.resumed_from_step == 6 and result.step == TOTAL_STEPS
    assert result.train_seconds > result.seconds > 0  # includes the time before the interruption
    assert_bit_identical(final_tensors(tmp_path), reference_run)
    # Log records of the redone step 7 were dropped, not duplicated.
    import json
    ticks = [json.loads(l)["step"] for l in (tmp_path / "log.jsonl").read_text().splitlines()
             if json.loads(l)["kind"] == "tick"]
    assert ticks == sorted(set(ticks)) and ticks[-1] == TOTAL_STEPS
    # A second call finds the run complete and does no more steps.
    method3, loop3, data3 = tiny_method()
    again = train(method3, data3, loop3, tmp_path, log=lambda s: None)
    assert again.step == TOTAL_STEPS and again.resumed_from_step == TOTAL_STEPS


_CHILD = textwrap.dedent("""
    import os, signal, sys, time, torch
    sys.path.insert(0, {tests!r})
    torch.set_num_threads({threads})
    from test_training_resume import tiny_method
    from onestep.benchmarks.training import train
    mode, run_dir = sys.argv[1], sys.argv[2]
    method, loop, data = tiny_method()
    if mode == "crash-in-write":
        # Die (SIGKILL) half-way through writing the second checkpoint's bytes.
        import onestep.methods.checkpoints.resume_io as rio
        real_save, calls = rio.torch.save, [0]
        def dying_save(obj, f, *a, **k):
            calls[0] += 1
            if calls[0] == 2:
                f.write(b"PK\\x03\\x04 half a zip file")
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, f, *a, **k)
        rio.torch.save = dying_save
    def progress(step, nimg):
        with open(os.path.join(run_dir, "progress"), "w") as f:
            f.write(str(step))
        if mode == "kill" and step >= 4:
            time.sleep(30)  # wait here to be killed by the parent
    train(method, data, loop, run_dir, on_step=progress, log=lambda s: None)
""")


def _run_child(mode: str, run_dir: Path, kill_at_step: int | None) -> int:
    script = _CHILD.format(tests=str(Path(__file__).parent), threads=torch.get_num_threads())
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen([sys.executable, "-c", script, mode, str(run_dir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if kill_at_step is not None:
        deadline = time.time() + 240
        progress = run_dir / "progress"
        while time.time() < deadline and proc.poll() is None:
            if progress.is_file() and progress.read_text().strip() and int(progress.read_text()) >= kill_at_step:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
    _, err = proc.communicate(timeout=240)
    return proc.returncode


def test_resume_after_kill_9_is_bit_identical(tmp_path, reference_run):
    rc = _run_child("kill", tmp_path, kill_at_step=4)
    assert rc == -signal.SIGKILL
    assert load_resume_state(tmp_path / RESUME_FILE)["step"] == 3  # last checkpoint before the kill
    method, loop, data = tiny_method()
    result = train(method, data, loop, tmp_path, log=lambda s: None)
    assert result.resumed_from_step == 3
    assert_bit_identical(final_tensors(tmp_path), reference_run)


def test_crash_while_writing_checkpoint_leaves_previous_one(tmp_path, reference_run):
    rc = _run_child("crash-in-write", tmp_path, kill_at_step=None)
    assert rc == -signal.SIGKILL
    # The half-written second checkpoint (step 6) never became resume.pt: the step-3 one is intact.
    assert load_resume_state(tmp_path / RESUME_FILE)["step"] == 3
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers, "the crash should have left the temporary file behind (not renamed)"
    method, loop, data = tiny_method()
    result = train(method, data, loop, tmp_path, log=lambda s: None)
    assert result.resumed_from_step == 3
    assert_bit_identical(final_tensors(tmp_path), reference_run)


def test_resume_of_another_config_is_refused_naming_both_hashes(tmp_path):
    method, loop, data = tiny_method({"loop.total_kimg": 0.048})
    first = train(method, data, loop, tmp_path, log=lambda s: None)
    other, loop2, data2 = tiny_method({"loop.total_kimg": 0.048, "method.lr": 1e-3})
    with pytest.raises(ResumeMismatchError) as e:
        train(other, data2, loop2, tmp_path, log=lambda s: None)
    from onestep.benchmarks.training import run_identity
    from onestep.methods.core.config import config_hash
    other_hash = config_hash(run_identity(other, loop2, data2))
    assert first.config_hash in str(e.value) and other_hash in str(e.value) and first.config_hash != other_hash
    # Longer training of the same config is not another config: it resumes.
    longer, loop3, data3 = tiny_method({"loop.total_kimg": 0.096})
    assert train(longer, data3, loop3, tmp_path, log=lambda s: None).resumed_from_step == 3
