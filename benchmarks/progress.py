"""The one progress display of the project (loading, generating, extracting features).

On a terminal: a tqdm bar with rate and ETA (tqdm is what the metric libraries already use).
Elsewhere (Slurm logs, CI, a pipe): one plain line every `ONESTEP_PROGRESS_S` seconds (default
30) and one at the end, so a log holds a handful of lines, never one per batch.

    bar = Progress("generating", total=1000, enabled=True)
    bar.update(64)      # images done since the last call
    bar.set(512)        # or: images done so far
    bar.close()
"""
from __future__ import annotations

import os
import sys
import time

INTERVAL_ENV = "ONESTEP_PROGRESS_S"


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, "30")))
    except ValueError:
        return 30.0


def _fmt_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    def __init__(self, what: str, total: int | None, enabled: bool = True, stream=None, unit: str = "images"):
        self.what, self.total, self.enabled, self.unit = what, total, enabled, unit
        self.stream = stream or sys.stderr
        self.done = 0
        self._t0 = self._last = time.monotonic()
        self._bar = None
        self._closed = False
        if enabled and _isatty(self.stream):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=what, unit=unit, unit_scale=True, file=self.stream, leave=True,
                             dynamic_ncols=True)

    # callable with the absolute count: the metrics harness's extract_features(progress=...) contract
    def __call__(self, done: int) -> None:
        self.set(done)

    def set(self, done: int) -> None:
        self.update(done - self.done)

    def update(self, n: int) -> None:
        if n <= 0:
            return
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        finished = self.total is not None and self.done >= self.total
        if finished or now - self._last >= _interval():
            self._last = now
            self._line(now)
            if finished:
                self._closed = True

    def _line(self, now: float) -> None:
        elapsed = max(now - self._t0, 1e-9)
        rate = self.done / elapsed
        tot = f"/{self.total}" if self.total else ""
        eta = ""
        if self.total and rate > 0 and self.done < self.total:
            eta = f", ETA {_fmt_eta((self.total - self.done) / rate)}"
        print(f"{self.what}: {self.done}{tot} {self.unit} ({rate:.1f} {self.unit}/s, {_fmt_eta(elapsed)} elapsed{eta})",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and not self._closed and self.done:
            self._line(time.monotonic())
        self._closed = True


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
