"""The predictor's typed settings, read from `paths`, `tracking`, `evaluate` and `predict`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import require
from pipeline.errors import UserInputError

DEFAULT_MODEL = "prompt-classifier"  # evaluate.registered_model's default


@dataclass(frozen=True)
class PredictSettings:
    tracking_uri: str  # the configured store, always passed explicitly (never the env var)
    registered_model: str = DEFAULT_MODEL  # evaluate.registered_model: one name, one place
    cache_dir: Path = Path("data/cache/predictor")  # fetched versions, by name and version
    embed_cache: Path = Path("data/cache/embeddings")  # where the encoder's ONNX export is
    batch_size: int = 64  # texts per forward pass
    threads: int = 0  # ONNX Runtime intra-op threads; 0: every core this process may use
    spin: bool = False  # ORT pool threads busy-wait between operators (runtime.py: why off)
    encode_batch: int = 16  # texts per encoder pass, longest first: less padding than 64
    max_text_chars: int = 100_000  # longer input is refused (exit 2 / 4xx), not truncated
    progress_every: int = 1000  # `pipeline predict --input`: a progress line per this many

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], root: Path = Path()) -> PredictSettings:
        """From a composed config (DictConfig or plain dict); relative paths under `root`."""
        from pipeline.tracking import TrackingSettings

        section = dict(cfg.get("predict") or {})
        known = {"batch_size", "threads", "max_text_chars", "progress_every", "cache_dir",
                 "spin", "encode_batch"}  # fmt: skip
        unknown = sorted(set(section) - known)
        if unknown:
            raise UserInputError(f"config key predict.{unknown[0]} does not exist")
        for key in ("batch_size", "max_text_chars", "progress_every", "encode_batch"):
            if key in section and int(section[key]) < 1:
                raise UserInputError(f"predict.{key}: must be a positive integer")
        evaluate = cfg.get("evaluate") or {}
        return cls(
            tracking_uri=TrackingSettings.from_cfg(require(cfg, "tracking")).resolved_uri(root),
            registered_model=str(evaluate.get("registered_model", DEFAULT_MODEL)),
            cache_dir=root / str(section.get("cache_dir", cls.cache_dir)),
            embed_cache=root / str(require(cfg, "paths.embed_cache")),
            spin=bool(section.get("spin", cls.spin)),
            **{k: int(section[k]) for k in known - {"cache_dir", "spin"} if k in section},
        )
