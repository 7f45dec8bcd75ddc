"""The predict path's ONNX Runtime options (pipeline/predict/runtime.py): serving choices
that must not change a vector, checked against the search path's encoder on the real
MiniLM export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import UserInputError

TEXTS = [
    "refund",
    "translate good morning to German, then explain the grammar of the sentence",
    "python bug " * 200,  # longer than the encoder's 256 tokens: cut, and flagged
    "Ünïcödé and emoji 🚀",
    "what is the capital of France?",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding the ONNX export of the bundled MiniLM (needs torch, once)."""
    from pipeline.embed import EmbedSettings
    from pipeline.embed.query import ensure_query_model

    cache_dir = tmp_path_factory.mktemp("predict-runtime")
    ensure_query_model(EmbedSettings(), cache_dir)
    return cache_dir


@pytest.mark.slow
def test_sub_batches_without_spinning_give_the_search_encoders_vectors(exported: Path) -> None:
    from pipeline.embed import EmbedSettings
    from pipeline.embed.onnx_paths import TOKENIZER_FILE, onnx_dir
    from pipeline.embed.query import QueryEncoder, query_model_file
    from pipeline.predict.runtime import Encoder

    settings = EmbedSettings()
    reference = QueryEncoder(settings, exported, threads=2)  # one pass, padded to the longest
    expected, expected_cut = reference.encode_flagged(TEXTS)
    directory = onnx_dir(settings.model, exported)
    encoder = Encoder(query_model_file(settings, exported), directory / TOKENIZER_FILE,
                      settings.max_length, threads=2, spin=False, encode_batch=2)  # fmt: skip
    got, cut = encoder.encode_flagged(TEXTS)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert cut == expected_cut == [False, False, True, False, False]
    options = encoder.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 2


def test_settings_read_spin_and_encode_batch_and_refuse_a_zero_batch() -> None:
    from pipeline.predict.settings import PredictSettings

    base = {"tracking": {"uri": "sqlite:///m.db", "experiment": "e"}, "paths": {"embed_cache": "c"}}
    s = PredictSettings.from_cfg({**base, "predict": {"spin": True, "encode_batch": 4}})
    assert (s.spin, s.encode_batch) == (True, 4)
    default = PredictSettings.from_cfg(base)
    assert (default.spin, default.encode_batch) == (False, 16)
    with pytest.raises(UserInputError, match=r"predict\.encode_batch"):
        PredictSettings.from_cfg({**base, "predict": {"encode_batch": 0}})
