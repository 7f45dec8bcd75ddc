"""The predictor spec: everything that turns a text into the exported graph's inputs.

Evaluate writes it beside the ONNX graph and logs both to the train run under `predictor/`
(pipeline/evaluate/predictor.py), so a registry version carries what predict needs. It is
plain JSON read without torch: the input kind, labels, the sentence encoder (by id), the
token limit, the hybrid's hashing settings, the context mode and the truncation rule.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError

ARTIFACT_PATH = "predictor"  # in the train run's artifacts
ONNX_FILE = "model.onnx"
SPEC_FILE = "predictor.json"
FORMAT = 1  # bump when a field changes meaning: an old spec then fails with a clear error
KINDS = ("embedding", "tokens", "embedding+lexical")


@dataclass(frozen=True)
class EncoderSpec:
    """The frozen sentence encoder of the embedding kinds (conf/embed at training time)."""

    model: str
    dim: int
    backend: str  # torch | onnx | onnx-int8: predict runs the ONNX export (int8 if trained so)
    max_length: int  # tokens; longer texts are truncated
    id: str  # pipeline.embed.api.encoder_id: names the exact text -> vector function


@dataclass(frozen=True)
class LexicalSpec:
    """The hybrid's hashed n-grams (pipeline/train/lexical.py LexicalSettings)."""

    n_features: int
    word_ngrams: tuple[int, int]
    char_ngrams: tuple[int, int] | None = None


@dataclass(frozen=True)
class PredictorSpec:
    """How to reproduce the model's inputs, and what its outputs mean."""

    labels: list[str]
    input_kind: str
    text: str = "prompt"  # prompt | prompt_response: what of a record the model reads
    context: str = "none"  # model.context: first_turn appends the session's first prompt
    encoder: EncoderSpec | None = None  # embedding kinds
    max_length: int | None = None  # tokens kind: token ids truncated to this
    lexical: LexicalSpec | None = None  # embedding+lexical
    inputs: list[str] = field(default_factory=lambda: ["input_0"])  # the graph's input names
    model: str = ""  # conf/model name, for people
    truncation: str = ""  # the rule in one sentence, for people
    format: int = FORMAT

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> PredictorSpec:
        """Read a spec, failing with one line naming `where` and the problem."""
        if data.get("format") != FORMAT:
            raise UserInputError(
                f"{where}: predictor spec format {data.get('format')!r}, this code reads "
                f"{FORMAT}; re-run evaluate to log the model again"
            )
        if data.get("input_kind") not in KINDS:
            raise UserInputError(f"{where}: input_kind {data.get('input_kind')!r} is unknown")
        try:
            encoder = data.get("encoder")
            lexical = data.get("lexical")
            return cls(
                **{k: v for k, v in data.items() if k not in ("encoder", "lexical")},
                encoder=EncoderSpec(**encoder) if encoder else None,
                lexical=_lexical(lexical) if lexical else None,
            )
        except TypeError as exc:
            raise UserInputError(f"{where}: not a predictor spec: {exc}") from None

    def write(self, path: Path) -> None:
        """Write as JSON (sorted keys, so the same model gives the same bytes)."""
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", "utf-8")

    @classmethod
    def read(cls, path: Path) -> PredictorSpec:
        """Read `path` (predictor.json)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserInputError(f"{path}: cannot read the predictor spec: {exc}") from None
        return cls.from_dict(data, str(path))


def _lexical(data: dict[str, Any]) -> LexicalSpec:
    char = data.get("char_ngrams")
    return LexicalSpec(
        n_features=int(data["n_features"]),
        word_ngrams=(int(data["word_ngrams"][0]), int(data["word_ngrams"][1])),
        char_ngrams=(int(char[0]), int(char[1])) if char else None,
    )
