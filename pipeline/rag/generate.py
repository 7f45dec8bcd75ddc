"""Optional generation through any OpenAI-compatible chat completions endpoint (vLLM,
llama.cpp's server, Ollama, `transformers serve`), and the citations the answer used.

Plain HTTP with httpx (already a dependency): no vendor client, nothing at import time,
and no network for anything else in pipeline/rag.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.errors import PipelineError, UserInputError
from pipeline.rag.context import RagContext
from pipeline.rag.settings import GeneratorSettings

# `[3]`, `[1, 4]`, `[2][5]`: the forms the template asks for and models commonly write.
_MARKER = re.compile(r"\[\s*(\d{1,4}(?:\s*,\s*\d{1,4})*)\s*\]")


class GeneratorError(PipelineError):
    """The endpoint could not be reached or gave no usable answer (exit code 1, HTTP 502)."""


@dataclass
class Answer:
    """What the generator said, and which numbered passages it cited."""

    text: str
    used: list[dict[str, Any]]  # {n, id}: citations the answer's markers name, first use first
    unknown: list[int]  # marker numbers that name no passage of the context
    model: str
    usage: dict[str, Any]  # the endpoint's own token counts, as it reports them
    took_ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cited(text: str, context: RagContext) -> tuple[list[dict[str, Any]], list[int]]:
    """(citations used, in order of first mention; marker numbers that cite nothing)."""
    by_number = {c["n"]: c for c in context.citations}
    used: list[dict[str, Any]] = []
    unknown: list[int] = []
    for match in _MARKER.finditer(text):
        for part in match.group(1).split(","):
            n = int(part)
            citation = by_number.get(n)
            if citation is None:
                if n not in unknown:
                    unknown.append(n)
            elif all(u["n"] != n for u in used):
                used.append({"n": n, "id": citation["id"]})
    return used, unknown


def generate(context: RagContext, settings: GeneratorSettings) -> Answer:
    """Send the filled prompt to the configured endpoint; map the answer's markers to ids."""
    import httpx

    if not settings.base_url or not settings.model:
        raise UserInputError(
            "generation needs rag.generator.base_url and rag.generator.model (conf/rag/)"
        )
    headers = {}
    if settings.api_key_env:
        key = os.environ.get(settings.api_key_env)
        if not key:
            raise UserInputError(
                f"rag.generator.api_key_env={settings.api_key_env!r}: the variable is not set"
            )
        headers["Authorization"] = f"Bearer {key}"
    body = {
        "model": settings.model,
        "messages": [{"role": "user", "content": context.prompt}],
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
        "stream": False,
    }
    url = settings.base_url.rstrip("/") + "/chat/completions"
    started = time.perf_counter()
    try:
        reply = httpx.post(url, json=body, headers=headers, timeout=settings.timeout_seconds)
    except httpx.HTTPError as exc:
        raise GeneratorError(f"{url}: {type(exc).__name__}: {exc}") from None
    took = (time.perf_counter() - started) * 1000
    if reply.status_code != 200:
        raise GeneratorError(f"{url}: HTTP {reply.status_code}: {reply.text[:500]}")
    text, model, usage = _parse(url, reply)
    used, unknown = cited(text, context)
    return Answer(text=text, used=used, unknown=unknown, model=model, usage=usage, took_ms=took)


def _parse(url: str, reply: Any) -> tuple[str, str, dict[str, Any]]:
    try:
        data = reply.json()
        text = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise GeneratorError(f"{url}: not a chat completion: {reply.text[:500]}") from None
    if not isinstance(text, str):
        raise GeneratorError(f"{url}: the answer has no text content")
    return text, str(data.get("model", "")), dict(data.get("usage") or {})
