"""Progress lines off a terminal and the start-up noise that is filtered out: real short fits."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import compose

TEXTS = ["add two numbers please", "fix my python function", "book a hotel by the beach"]


def _fit(tmp_path: Path, callbacks: list, epochs: int = 3) -> None:
    from hydra.utils import instantiate

    from pipeline.train.inputs import Collate, InputKind, model_inputs
    from pipeline.train.module import ClassifierDataModule, ClassifierModule, RowsDataset
    from pipeline.train.settings import FitSettings

    cfg = compose(["model=textcnn", "model.net.embed_dim=8", "model.net.channels=4"])
    net = instantiate(cfg.model.net, num_labels=3)
    inputs = model_inputs(InputKind.of(net), max_length=16)
    rows = RowsDataset(inputs.features(TEXTS * 4), np.array([0, 1, 2] * 4))
    data = ClassifierDataModule(rows, rows, Collate(inputs), batch_size=4)
    module = ClassifierModule(net, 3, instantiate(cfg.optimizer), lr=cfg.model.lr)
    trainer = instantiate(
        FitSettings.from_cfg(cfg, tmp_path).trainer,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,  # what the train core does when stderr is not a terminal
        callbacks=callbacks,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, datamodule=data)


@pytest.mark.slow  # imports Lightning
def test_progress_lines_per_epoch_with_time_left(tmp_path: Path) -> None:
    from pipeline.train.progress import ProgressLines

    stream = io.StringIO()  # not a terminal
    # every_seconds=0: every batch also gets a line, as a long epoch would every 30 s.
    _fit(tmp_path, [ProgressLines(every_seconds=0, stream=stream)])
    lines = stream.getvalue().splitlines()
    assert lines[0] == "training: up to 3 epochs of 3 batches"
    epochs = [line for line in lines if re.fullmatch(r"epoch \d/3 · val_macro_f1 .*", line)]
    assert len(epochs) == 3, lines
    pattern = r"epoch (\d)/3 · val_macro_f1 (\d\.\d{3}) · \d+ s/epoch · ~(\d+) s left"
    for number, line in enumerate(epochs, start=1):
        match = re.fullmatch(pattern, line)
        assert match and int(match[1]) == number, line
    assert re.fullmatch(pattern, epochs[-1])[3] == "0"  # nothing left after the last epoch
    batch = r"epoch 1/3 · batch 2/3 · \d+\.\d\d s/batch · ~\d+ s left in this epoch"
    assert any(re.fullmatch(batch, line) for line in lines), lines
    assert re.fullmatch(r"training done: 3 epochs in \d+ s", lines[-1])


@pytest.mark.slow  # imports Lightning
def test_lightning_start_up_noise_is_dropped_warnings_kept(tmp_path: Path, caplog) -> None:
    from pipeline.train.quiet import quiet_libraries

    quiet_libraries()
    with caplog.at_level(logging.INFO):
        _fit(tmp_path, [], epochs=1)
        logging.getLogger("pytorch_lightning.utilities.rank_zero").warning("a real warning")
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if m.startswith(("GPU available", "TPU available", "💡"))]
    assert "a real warning" in messages
