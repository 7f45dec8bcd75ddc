"""`embed.engine=ray`: the texts missing from the embedding cache, encoded on Ray Data.

The driver looks up the cache and finds the texts to encode exactly as the local engine
does (`api.embed`); only the encoding moves. Those texts, sorted by length so each batch
pads little, go to Ray as one dataset; `map_batches` runs them through a fixed pool of
`embed.ray.workers` actors, each of which builds its ONNX Runtime session once from the
export's bytes (shipped through the object store: a worker needs neither the cache
directory nor a model download) and tokenises and encodes its batches as the local
encoder does. The vectors come back to the driver batch by batch and are written to the
cache by the same code as the local engine's (`on_batch`), so the cache stays the only
source of truth and a killed run keeps every shard it flushed.

Ray is imported only when there is something to encode: a run whose texts are all cached
starts no cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import PipelineError, UserInputError


@dataclass(frozen=True)
class EmbedRaySettings:
    """`embed.ray` of the config."""

    address: str | None = None  # None: a local cluster of workers x cpus_per_worker CPUs
    workers: int = 2  # actors, each holding one ONNX Runtime session
    cpus_per_worker: int = 1  # CPUs each actor reserves; its ORT session's threads
    object_store_memory: int = 500_000_000  # bytes of the local cluster's object store
    batch_texts: int = 64  # texts per Ray block: the unit an idle actor takes (balance)

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None) -> EmbedRaySettings:
        from pipeline.ray_cluster import parse_size

        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
        if unknown:
            raise UserInputError(f"config embed.ray: unknown key(s) {', '.join(unknown)}")
        values = {}
        for key in ("workers", "cpus_per_worker", "batch_texts"):
            value = cfg.get(key, getattr(cls, key))
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserInputError(f"config embed.ray.{key}={value!r}: must be an integer >= 1")
            values[key] = value
        store = parse_size(cfg.get("object_store_memory", "500MB"), "embed.ray.object_store_memory")
        address = cfg.get("address")
        return cls(str(address) if address else None, object_store_memory=store, **values)

    @property
    def cpus(self) -> int:
        """CPUs the actor pool reserves (the local cluster's size)."""
        return self.workers * self.cpus_per_worker


class EncodeActor:
    """One Ray actor: an ONNX Runtime session and a tokenizer, built once, then batches."""

    def __init__(self, files: tuple[Any, Any], max_length: int, batch_size: int,
                 threads: int) -> None:  # fmt: skip
        import ray

        from pipeline.embed.onnx_encoder import OnnxEncoder

        model, tokenizer = ray.get(list(files))
        self.encoder = OnnxEncoder(model, tokenizer, max_length, threads=threads)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from pipeline.embed.models import tokenize

        ids = tokenize(self.encoder.tokenizer, [str(t) for t in batch["text"]])
        vectors = self.encoder.encode(ids, self.batch_size)
        return {"pos": np.asarray(batch["pos"], dtype=np.int64), "vector": vectors}


def export_bytes(settings: Any, cache_dir: str | Path | None) -> tuple[bytes, bytes]:
    """The ONNX export's model and tokenizer files, made first if missing (as the local
    engine does), read on the driver to be shipped to the workers."""
    import tempfile

    from pipeline.embed.onnx_export import ensure_onnx
    from pipeline.embed.onnx_paths import FLOAT_FILE, INT8_FILE, TOKENIZER_FILE

    base = cache_dir if cache_dir is not None else tempfile.mkdtemp(prefix="embed-onnx-")
    directory = ensure_onnx(settings.model, base)
    weights = INT8_FILE if settings.backend == "onnx-int8" else FLOAT_FILE
    return (directory / weights).read_bytes(), (directory / TOKENIZER_FILE).read_bytes()


def encode_on_ray(
    texts: Sequence[str],
    settings: Any,
    cache_dir: str | Path | None,
    on_batch: Callable[[np.ndarray, np.ndarray], None],
) -> np.ndarray:
    """Vectors of `texts` (rows in their order), encoded by `settings.ray.workers` actors;
    `on_batch(positions, vectors)` sees each batch as it comes back, on the driver. The
    cluster is joined (or started) and checked before the export is read, so a wrong
    address or pool size fails in seconds."""
    import pyarrow as pa

    from pipeline.ray_cluster import cluster

    rs: EmbedRaySettings = settings.ray
    out = np.zeros((len(texts), settings.dim), dtype=np.float32)
    if not len(texts):
        return out
    # Longest first, as the local encoder orders them: each Ray batch holds texts of
    # similar length, and the actor's own batches pad to their longest.
    order = np.argsort([-len(t) for t in texts], kind="stable")
    table = pa.table({"pos": pa.array(order, pa.int64()),
                      "text": pa.array([texts[i] for i in order], pa.string())})  # fmt: skip
    with cluster(rs.address, rs.cpus, rs.object_store_memory, "embed.engine") as ray:
        available = int(ray.cluster_resources().get("CPU", 0))
        if available < rs.cpus:
            raise UserInputError(
                f"config embed.ray: {rs.workers} workers x {rs.cpus_per_worker} CPUs need "
                f"{rs.cpus} CPUs, the Ray cluster has {available}"
            )
        model, tokenizer = export_bytes(settings, cache_dir)
        refs = [ray.put(model), ray.put(tokenizer)]  # held here until the run ends
        del model, tokenizer
        blocks = [table.slice(i, rs.batch_texts) for i in range(0, len(order), rs.batch_texts)]
        vectors = ray.data.from_arrow(blocks).map_batches(
            EncodeActor,
            # The export's bytes go by reference (nested, so Ray does not resolve them
            # itself): each actor fetches them once from the object store.
            fn_constructor_kwargs={"files": tuple(refs), "max_length": settings.max_length,
                                   "batch_size": settings.batch_size,
                                   "threads": rs.cpus_per_worker},
            batch_size=rs.batch_texts, batch_format="numpy", num_cpus=rs.cpus_per_worker,
            # Two blocks per actor at most (one running, one queued): an idle actor takes the
            # next block, so the longest texts (the first blocks) do not pile up on one.
            compute=ray.data.ActorPoolStrategy(size=rs.workers, max_tasks_in_flight_per_actor=2),
        )  # fmt: skip
        seen = 0
        try:
            for batch in vectors.iter_batches(batch_format="numpy", batch_size=None):
                positions, got = batch["pos"], np.asarray(batch["vector"], dtype=np.float32)
                if got.ndim != 2 or got.shape[1] != settings.dim:
                    raise UserInputError(
                        f"embed.dim is {settings.dim} but {settings.model} gives {got.shape[-1]}"
                    )
                out[positions] = got
                seen += len(positions)
                on_batch(positions, got)
        except (PipelineError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a worker died or raised: Ray's error, and its cause
            raise PipelineError(
                f"embed.engine=ray: encoding failed on the Ray workers after {seen} of "
                f"{len(texts)} texts ({type(exc).__name__}: {_cause(exc)}); the cache keeps the "
                "shards flushed so far (every embed.flush_every vectors), a re-run encodes "
                "only the rest"
            ) from exc
    if seen != len(texts):
        raise PipelineError(f"embed.engine=ray: {seen} vectors came back for {len(texts)} texts")
    return out


def _cause(exc: BaseException) -> str:
    """The last line of a Ray error (the worker's own exception, after its traceback)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else type(exc).__name__
