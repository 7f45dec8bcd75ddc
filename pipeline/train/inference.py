"""Loading a trained classifier from `models/` for prediction and ONNX export."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import NotFoundError


class Classifier:
    """A trained network with the preprocessing it expects (embedding or tokenisation)."""

    def __init__(
        self,
        module: Any,
        labels: list[str],
        config: dict[str, Any],
        cache_dir: Path | None = None,
    ) -> None:
        from pipeline.train.inputs import InputKind, model_inputs

        self.module = module.eval()
        self.labels = labels
        self.config = config
        self.cache_dir = cache_dir
        self.inputs = model_inputs(
            InputKind.of(module),
            config.get("embed", {}),
            cache_dir,
            int(config["model"].get("max_length", 128)),
            getattr(module, "lexical", None),  # the hashing settings of a hybrid network
        )

    def export_inputs(self, texts: Sequence[str]) -> tuple[Any, ...]:
        """Tensors `module.forward(*inputs)` takes: (embedding,), (input_ids, attention_mask)."""
        return self.inputs.tensors(self.inputs.features(texts))

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities (n, len(labels)), columns in the order of `labels`."""
        import torch

        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                inputs = self.export_inputs(texts[start : start + batch_size])
                logits = self.module(*inputs)
                out[start : start + len(logits)] = torch.softmax(logits, dim=1).numpy()
        return out


def load_classifier(models_dir: str | Path, cache_dir: str | Path | None = None) -> Classifier:
    """Rebuild the network from `meta.json` and load `best.ckpt`.

    `cache_dir` defaults to the embedding cache the run used, resolved against the parent of
    `models_dir` (the repository root), so evaluating the probe re-uses cached vectors.
    """
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    models_dir = Path(models_dir)
    meta_path, ckpt_path = models_dir / "meta.json", models_dir / "best.ckpt"
    for path in (meta_path, ckpt_path):
        if not path.exists():
            raise NotFoundError(f"{path}: no trained model; run `pipeline train` first")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    config = meta["config"]
    labels = list(meta["labels"])
    net = instantiate(OmegaConf.create(config["model"]["net"]), num_labels=len(labels))
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
    net.load_state_dict(
        {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    )
    if cache_dir is None and config.get("paths", {}).get("embed_cache"):
        cache_dir = models_dir.resolve().parent / config["paths"]["embed_cache"]
    return Classifier(net, labels, config, Path(cache_dir) if cache_dir else None)
