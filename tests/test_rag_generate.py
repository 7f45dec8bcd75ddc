"""Generation end to end, all real processes: `pipeline serve` (real index, real encoder)
answers POST /rag with `generate`, sending the packed prompt to `transformers serve` (an
OpenAI-compatible server) running a tiny randomly initialised GPT-2 built here. The model
is rigged to answer "[2] [2] ..." (tests/helpers/tiny_llm.py): the test checks the
plumbing (the marker mapped to the second citation's record id, the budget honoured in the
generator's own token count), not the prose."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from helpers.serve import (
    build_index,
    build_store,
    start_serve,
    start_uvicorn,
    stop_process,
    write_params,
)
from helpers.tiny_llm import build_tiny_llm

from pipeline.service.keys import create_key

pytest.importorskip("openai", reason="`transformers serve` needs transformers[serving]")
BUDGET = 160


def _model_server(model: Path, cwd: Path) -> tuple[subprocess.Popen, str, Path]:
    """`transformers serve MODEL --port 0` as a child process, once it listens."""
    # The CLI beside this interpreter (the project's .venv), wherever PATH points.
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent))
    assert exe, "the transformers CLI is not on PATH"
    cmd = [exe, "serve", str(model), "--host", "127.0.0.1", "--port", "0", "--device", "cpu",
           "--log-level", "info"]  # fmt: skip
    return start_uvicorn(cmd, cwd, cwd / "model-server.log", "the model server", timeout=180)


@pytest.mark.slow
def test_rag_answers_through_a_real_openai_compatible_server(tmp_path):
    config = build_store(tmp_path)
    build_index(config, real_encoder=True)
    model = build_tiny_llm(tmp_path / "tiny-llm", emit="[2]")
    llm, llm_url, llm_log = _model_server(model, tmp_path)
    try:
        params = write_params(config, tmp_path)
        cfg = yaml.safe_load(params.read_text())
        cfg["rag"] = {
            "budget_tokens": BUDGET,
            "tokenizer": str(model),  # the generator's own tokenizer counts the budget
            "generator": {"base_url": f"{llm_url}/v1", "model": str(model), "max_tokens": 6},
        }
        params.write_text(yaml.safe_dump(cfg))
        key = create_key(config.paths.service_db, "reader", "rag")[0]
        server, url, log = start_serve(params, tmp_path)
        try:
            reply = httpx.post(
                f"{url}/rag",
                json={"question": "how can I reset my password", "generate": True},
                headers={"Authorization": f"Bearer {key}"},
                timeout=120,
            )
        finally:
            stop_process(server)
        assert reply.status_code == 200, f"{reply.text}\n{log.read_text()}\n{llm_log.read_text()}"
    finally:
        stop_process(llm)
    body = reply.json()
    citations, answer = body["citations"], body["answer"]
    assert citations[0]["id"] == "a1" and citations[0]["role"] == "hit"  # the real encoder's
    assert len(citations) >= 2
    assert answer["text"].startswith("[2]")
    assert answer["used"] == [{"n": 2, "id": citations[1]["id"]}] and answer["unknown"] == []
    assert body["tokens"] <= BUDGET
    # The server counted the same prompt with the same tokenizer, plus its chat template's
    # few tokens ("user: ", "assistant:") and the special ones.
    assert body["tokens"] <= answer["usage"]["prompt_tokens"] <= body["tokens"] + 12
