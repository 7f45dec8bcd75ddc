"""Progress as plain lines when output is not a terminal (CI logs, `dvc repro | tee`).

A progress bar redraws one line with carriage returns: in a log file that is either nothing
for minutes or a wall of fragments. This callback prints one line per epoch

    epoch 3/10 · val_macro_f1 0.912 · 12 s/epoch · ~84 s left

and, inside an epoch longer than `every_seconds`, a line per interval with the batch count
and the epoch's remaining time, so a fine-tune on 2 cores shows it is alive within seconds.
It prints only when the Trainer has no progress bar: the train core turns the bar off when
stderr is not a terminal (`pipeline/train/fit.py`), so a terminal keeps the TQDM bar.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class ProgressLines(Callback):
    """One line per epoch (and per `every_seconds` inside long epochs) with an ETA."""

    def __init__(
        self,
        every_seconds: float = 30.0,
        monitor: str = "val_macro_f1",
        stream: TextIO | None = None,
    ) -> None:
        self.every_seconds = every_seconds
        self.monitor = monitor
        self._stream = stream
        self._fit_start = self._epoch_start = self._last_line = 0.0
        self._epoch_seconds: list[float] = []

    @property
    def stream(self) -> TextIO:
        # Resolved late: pytest and the CLI swap sys.stderr after this object is built.
        return self._stream if self._stream is not None else sys.stderr

    def _print(self, trainer: pl.Trainer, line: str) -> None:
        # A progress bar already shows all this, redrawn in place.
        if trainer.is_global_zero and trainer.progress_bar_callback is None:
            print(line, file=self.stream, flush=True)
            self._last_line = time.perf_counter()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = self._last_line = time.perf_counter()
        self._epoch_seconds = []
        batches = _count(trainer.num_training_batches)
        self._print(
            trainer,
            f"training: up to {trainer.max_epochs} epochs"
            + (f" of {batches} batches" if batches else ""),
        )

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        now = time.perf_counter()
        if now - self._last_line < self.every_seconds:
            return
        done, total = i + 1, _count(trainer.num_training_batches)
        per_batch = (now - self._epoch_start) / done
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}", f"batch {done}"]
        if total:
            parts[-1] += f"/{total}"
            parts.append(f"{per_batch:.2f} s/batch")
            parts.append(f"~{_duration((total - done) * per_batch)} left in this epoch")
        self._print(trainer, " · ".join(parts))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning runs the epoch's validation before this hook: the val metrics are fresh.
        self._epoch_seconds.append(time.perf_counter() - self._epoch_start)
        per_epoch = sum(self._epoch_seconds) / len(self._epoch_seconds)
        epoch, total = trainer.current_epoch + 1, trainer.max_epochs
        parts = [f"epoch {epoch}/{total}"]
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None:
            parts.append(f"{self.monitor} {float(value):.3f}")
        parts.append(f"{_duration(per_epoch)}/epoch")
        if total and total > 0:
            # An upper bound: early stopping may end the fit sooner.
            parts.append(f"~{_duration((total - epoch) * per_epoch)} left")
        self._print(trainer, " · ".join(parts))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = time.perf_counter() - self._fit_start
        self._print(trainer, f"training done: {len(self._epoch_seconds)} epochs in "
                    f"{_duration(seconds)}")  # fmt: skip


def _count(batches: Any) -> int:
    """Lightning's batch count, 0 when unknown (an iterable without a length is `inf`)."""
    try:
        return int(batches)
    except (TypeError, ValueError, OverflowError):
        return 0


def _duration(seconds: float) -> str:
    """'12 s', '3.5 min' or '1.2 h': short enough for a log line."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
