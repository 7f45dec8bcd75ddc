"""The served model: the registry's champion, loaded at start and swapped when the alias moves.

The alias is re-read every `serve.reload_seconds` (a read-only SQL query on a local sqlite
registry). A new version is loaded beside the current one and swapped in by assignment, as
the index is republished (pipeline/api/state.py): a request holds the Predictor it started
with and finishes on it, so none fails or waits. A version that fails to load is logged and
the previous one keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

log = logging.getLogger("pipeline.serve")


def load_predictor(cfg: Mapping[str, Any], ref: str, root: Path) -> Any:
    """The registered version `ref` as a Predictor (ONNX Runtime; no torch)."""
    from pipeline.predict.model import Predictor

    return Predictor.load(cfg, ref, root=root)


def resolve_version(cfg: Mapping[str, Any], ref: str, root: Path) -> str:
    """The version number `ref` names now (cheap: no model files are read)."""
    from pipeline.predict.registry import resolve
    from pipeline.predict.settings import PredictSettings

    s = PredictSettings.from_cfg(cfg, root)
    return resolve(s.tracking_uri, s.registered_model, str(ref)).version


class ServedModel:
    """The current Predictor of `ref` (default the champion), or None with `error` set."""

    def __init__(
        self,
        cfg: Mapping[str, Any],
        root: Path,
        ref: str = "champion",
        loader: Callable[[Mapping[str, Any], str, Path], Any] = load_predictor,
    ) -> None:
        self.cfg, self.root, self.ref = cfg, root, ref
        self._loader = loader
        self._current: Any = None
        self.error: str | None = "no model has been loaded yet"
        self._lock = threading.Lock()  # one load at a time; readers never take it

    def current(self) -> Any:
        """The Predictor requests use now (loaded on first use), or None (see `error`)."""
        if self._current is None:
            self.refresh()
        return self._current

    def refresh(self) -> bool:
        """Load the version `ref` names if it is not the one served; True if one was swapped in."""
        with self._lock:
            try:
                version = resolve_version(self.cfg, self.ref, self.root)
                if self._current is not None and self._current.version == version:
                    return False
                # Load the number just resolved, not the alias: it may move again meanwhile.
                predictor = self._loader(self.cfg, version, self.root)
            except (PipelineError, ImportError, OSError) as exc:
                if self._current is None:
                    self.error = str(exc)
                else:
                    log.warning("model reload failed, still serving version %s: %s",
                                self._current.version, exc)  # fmt: skip
                return False
            previous, self._current, self.error = self._current, predictor, None
        if previous is not None:
            log.warning("now serving %s version %s (was %s)", predictor.name,
                        predictor.version, previous.version)  # fmt: skip
        return True
