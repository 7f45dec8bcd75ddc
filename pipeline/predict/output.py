"""`pipeline predict --output`: predictions as Parquet or JSON Lines, published atomically."""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any

from pipeline.embed import EmbedSettings, text_of


class PredictionWriter:
    """Predicts batches of file rows and writes them; the file appears only when complete,
    so a bad row or an interrupt leaves no half-written output."""

    def __init__(self, target: Path, predictor: Any) -> None:
        self.target, self.predictor = target, predictor
        self.parquet = target.suffix.lower() == ".parquet"
        self._text = EmbedSettings(text=predictor.spec.text)
        self._writer: Any = None

    def __enter__(self) -> PredictionWriter:
        from pipeline.io.atomic import atomic_path

        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._publish = atomic_path(self.target)
        self._tmp = self._publish.__enter__()
        if not self.parquet:
            self._writer = self._tmp.open("w", encoding="utf-8")
        return self

    def write(self, rows: list[dict]) -> int:
        """Predict `rows` (from pipeline.predict.inputs.file_rows) and write them."""
        if not rows:
            return 0
        texts = [text_of(r["text"], r["response"], self._text) for r in rows]
        out = [
            {"line": r["line"], "id": r["id"], "label": p.label, "confidence": p.confidence,
             "probabilities": p.probabilities, "truncated": p.truncated,
             "model_version": self.predictor.version}
            for r, p in zip(rows, self.predictor.predict(texts), strict=True)
        ]  # fmt: skip
        if self.parquet:
            self._write_parquet(out)
        else:
            self._writer.writelines(json.dumps(row, sort_keys=True) + "\n" for row in out)
        return len(out)

    def _write_parquet(self, out: list[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for row in out:
            row["probabilities"] = list(row["probabilities"].items())
        schema = pa.schema([("line", pa.int64()), ("id", pa.string()), ("label", pa.string()),
                            ("confidence", pa.float64()),
                            ("probabilities", pa.map_(pa.string(), pa.float64())),
                            ("truncated", pa.bool_()), ("model_version", pa.string())])  # fmt: skip
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, schema)
        self._writer.write_table(pa.Table.from_pylist(out, schema=schema))

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            self._writer.close()
        elif self.parquet and kind is None:  # an empty input: an empty file with the columns
            self._write_parquet([])
            self._writer.close()
        self._publish.__exit__(kind, exc, tb)
