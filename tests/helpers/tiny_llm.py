"""A tiny, randomly initialised causal LM saved to a directory, for serving tests (no download).

The weights are random except one rigged path: the final LayerNorm's weight is zero and its
bias points at the embedding of one token, so greedy decoding emits that token whatever the
prompt. With the token being a citation marker ("[1]"), a real server's answer cites
something, and the test checks the plumbing (markers mapped to record ids), not the prose.
"""

from __future__ import annotations

from pathlib import Path

MARKERS = tuple(f"[{n}]" for n in range(1, 10))
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)


def build_tiny_llm(out: Path, emit: str = "[1]", seed: int = 0) -> Path:
    """Save a GPT-2 shaped model (1 layer, 32 wide) and its tokenizer under `out`."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from pipeline.embed.models import BUNDLED_MODEL, model_dir

    torch.manual_seed(seed)
    # The bundled encoder's WordPiece vocabulary, with the markers as whole tokens so that
    # they decode as "[1]" rather than "[ 1 ]".
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir(BUNDLED_MODEL)))
    tokenizer.add_tokens(list(MARKERS))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 4096
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=4096,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    model = GPT2LMHeadModel(config).eval()
    target = tokenizer.convert_tokens_to_ids(emit)
    with torch.no_grad():
        wte = model.transformer.wte.weight
        wte[target] = wte[target] / wte[target].norm() * 50.0
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(wte[target] / wte[target].norm())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    return out
