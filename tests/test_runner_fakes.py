"""A small stand-in for the expensive stages (teacher, training, metrics) used by the store,
resume and sweep tests. It keeps real resume semantics: state is checkpointed atomically into
the run's checkpoint folder after every step and training continues from it. (Not a test
module: it only holds helpers importable by subprocesses and submitit jobs.)"""
from __future__ import annotations

import json
import os
import signal
import time

from onestep.benchmarks.runner import TrainResult
from onestep.methods.core.atomic import atomic_write_json


def value_after(steps: int) -> float:
    """The fake 'model state' after `steps` uninterrupted steps, computed independently."""
    x = 0.0
    for s in range(steps):
        x = 0.5 * x + s
    return x


class FakePipeline:
    def __init__(self, steps: int = 4, fail: bool = False, kill_at: int | None = None, sleep: float = 0.0, calls_file=None):
        self.steps, self.fail, self.kill_at, self.sleep = steps, fail, kill_at, sleep
        self.calls_file = calls_file

    def _note(self, what):
        if self.calls_file:
            with open(self.calls_file, "a") as f:
                f.write(f"{what} {os.getpid()}\n")

    def load_teacher(self, spec):
        return None

    def load_data(self, spec, split="train"):
        return None

    def train(self, spec, run, teacher, data, evaluate):
        self._note("train")
        if self.fail:
            raise RuntimeError("fake training diverged")
        ckpt = run.checkpoint_dir / "state.json"
        state = json.loads(ckpt.read_text()) if ckpt.exists() else {"step": 0, "x": 0.0}
        resumed = state["step"] if ckpt.exists() else None
        for s in range(state["step"], self.steps):
            if self.kill_at is not None and s == self.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            state = {"step": s + 1, "x": 0.5 * state["x"] + s}
            atomic_write_json(ckpt, state)
            evaluate(("gen", state["x"]), (s + 1) * 1000)
            time.sleep(self.sleep)
        return TrainResult(("gen", state["x"]), {"steps": state["step"], "resumed_from_step": resumed})

    def evaluate(self, spec, generator, data, metrics, n, seeds, reference):
        return {m: 100.0 / (1.0 + generator[1]) for m in metrics}

    def save_grid(self, generator, path, n):
        path.write_bytes(b"\x89PNG fake grid")
