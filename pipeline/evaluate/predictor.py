"""What evaluate publishes for predict: the spec beside the ONNX graph, logged to the run.

The train run's `predictor/` artifacts (model.onnx and predictor.json) are what a registry
version of that run carries to `pipeline predict` and `POST /predict` (pipeline/predict/).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.predict.spec import (
    ARTIFACT_PATH,
    ONNX_FILE,
    SPEC_FILE,
    EncoderSpec,
    LexicalSpec,
    PredictorSpec,
)


def predictor_spec(classifier: Any, meta: Mapping[str, Any]) -> PredictorSpec:
    """The spec of a loaded classifier (pipeline/train/inference.py) and its meta.json."""
    from pipeline.embed.api import EmbedSettings, encoder_id
    from pipeline.evaluate.export import input_names

    inputs = classifier.inputs
    kind = str(inputs.kind)
    encoder = lexical = max_length = None
    embedding = getattr(inputs, "embedding", inputs)  # the hybrid wraps an EmbeddingInputs
    if kind != "tokens":
        e = EmbedSettings.from_cfg(embedding.embed)
        encoder = EncoderSpec(e.model, e.dim, e.backend, e.max_length, encoder_id(e))
        rule = f"texts are cut at {e.max_length} {e.model} tokens for the sentence vector"
    else:
        max_length = int(inputs.max_length)
        rule = f"texts are cut at {max_length} MiniLM tokens"
    if kind == "embedding+lexical":
        lex = inputs.lexical
        lexical = LexicalSpec(lex.n_features, tuple(lex.word_ngrams), lex.char_ngrams)
        rule += "; the hashed n-grams read the whole text"
    return PredictorSpec(
        labels=list(classifier.labels),
        input_kind=kind,
        text=str(meta.get("text", "prompt")),
        context=str(meta.get("context", "none")),
        encoder=encoder,
        max_length=max_length,
        lexical=lexical,
        inputs=input_names(2 if kind == "tokens" else 1),
        model=str(meta.get("model", "")),
        truncation=rule,
    )


def log_predictor(tracking_uri: str, run_id: str, directory: Path) -> None:
    """Log `directory`'s model.onnx and predictor.json as the run's `predictor/` artifacts."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    for name in (ONNX_FILE, SPEC_FILE):
        client.log_artifact(run_id, str(directory / name), artifact_path=ARTIFACT_PATH)
