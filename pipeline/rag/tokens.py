"""The generator's tokenizer, loaded once per source, counting tokens exactly (no estimates).

Only the `tokenizers` library is used (no transformers import): a `tokenizer.json` from the
bundled encoder package, a local model directory or file, or a Hugging Face id resolved
through the local cache (HF_HUB_OFFLINE is honoured, so nothing is downloaded offline).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError


class TokenCounter:
    """Exact token counts of text under one tokenizer, without special tokens."""

    def __init__(self, tokenizer: Any, name: str) -> None:
        self._tokenizer = tokenizer
        self.name = name

    def count(self, text: str) -> int:
        """How many tokens `text` is, as the generator's tokenizer splits it."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_many(self, texts: list[str]) -> list[int]:
        """`count` of each text, in one call into the tokenizer."""
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def cut(self, text: str, tokens: int) -> str:
        """The longest prefix of `text` that is at most `tokens` tokens, cut at a token edge."""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        if len(encoding.ids) <= tokens:
            return text
        if tokens <= 0:
            return ""
        return text[: encoding.offsets[tokens - 1][1]]


@functools.lru_cache(maxsize=4)
def token_counter(source: str) -> TokenCounter:
    """The counter for `source` (see conf/rag/default.yaml `tokenizer`), cached per process."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(_tokenizer_file(source)))
    # A tokenizer.json may carry fixed padding and truncation (the bundled one pads to 128):
    # a count must be of the text as it is.
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return TokenCounter(tokenizer, source)


def _tokenizer_file(source: str) -> Path:
    from pipeline.embed.models import BUNDLED_MODEL, model_dir

    if source in (BUNDLED_MODEL, f"sentence-transformers/{BUNDLED_MODEL}"):
        return model_dir(source) / "tokenizer.json"
    path = Path(source)
    if path.is_file():
        return path
    if (path / "tokenizer.json").is_file():
        return path / "tokenizer.json"
    if path.exists() or source.startswith((".", "/")) or source.count("/") != 1:
        raise UserInputError(
            f"rag.tokenizer {source!r}: not the bundled {BUNDLED_MODEL!r}, a tokenizer.json, "
            "a directory holding one, or a Hugging Face id (org/name)"
        )
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(source, "tokenizer.json"))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise UserInputError(
            f"rag.tokenizer {source!r}: no tokenizer.json in the local Hugging Face cache and "
            f"none could be fetched ({type(exc).__name__}); give a local path instead"
        ) from None
