"""`pipeline rag QUESTION`: retrieved records packed into a prompt, optionally answered."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline.cli import emit
from pipeline.commands.options import add_config_options, load_config, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    rag = sub.add_parser(
        "rag",
        help="build grounded context (a prompt with numbered citations) for a question",
        description="Hybrid search, neighbouring session turns, near-identical passages "
        "merged, packed into rag.budget_tokens of the generator's tokenizer (docs/rag.md).",
    )
    rag.add_argument("question", help="the question to ground")
    rag.add_argument("-k", "--candidates", type=positive_int, help="hits to retrieve")
    rag.add_argument("--budget", type=positive_int, help="token budget of the filled prompt")
    rag.add_argument(
        "--filter", action="append", default=[], metavar="F",
        help="as in `pipeline search`, e.g. label=support (repeatable)",
    )  # fmt: skip
    rag.add_argument(
        "--generate", action="store_true", help="send the prompt to rag.generator (conf/rag/)"
    )
    add_config_options(rag)
    rag.add_argument("--json", action="store_true", help="print context and citations as JSON")
    rag.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.rag import RagSettings, build_context
    from pipeline.search.project import open_from_config
    from pipeline.store.scope import Scope

    params = load_config(args, plain=True)
    settings = RagSettings.from_cfg(params.get("rag"))
    searcher = open_from_config(args.root, params)
    try:
        # The owner of the files reads them all; API keys get their scope in pipeline/api.
        context = build_context(
            searcher, args.question, settings, scope=Scope.all(), filters=args.filter,
            candidates=args.candidates, budget=args.budget,
        )  # fmt: skip
        answer = None
        if args.generate:
            from pipeline.rag.generate import generate

            answer = generate(context, settings.generator)
    finally:
        searcher.close()
    out = context.to_dict()
    if answer is not None:
        out["answer"] = answer.to_dict()
    emit(out, args.json, _human(out))
    return 0


def _human(out: dict[str, Any]) -> str:
    lines = [out["prompt"], "", f"-- {out['tokens']}/{out['budget']} tokens ({out['tokenizer']})"]
    for c in out["citations"]:
        score = "" if c["score"] is None else f" score {c['score']:.4f}"
        how = f"neighbour of {c['of']}" if c["role"] == "neighbour" else "hit"
        merged = f" (merged: {', '.join(c['merged'])})" if c["merged"] else ""
        lines.append(f"[{c['n']}] {c['id']}  {how}{score}{merged}")
    if out["dropped"]:
        lines.append(f"-- dropped for the budget: {', '.join(d['id'] for d in out['dropped'])}")
    answer = out.get("answer")
    if answer is not None:
        lines += ["", answer["text"], ""]
        lines.append(
            "-- cited: " + (", ".join(f"[{u['n']}] {u['id']}" for u in answer["used"]) or "none")
        )
        if answer["unknown"]:
            lines.append(f"-- markers citing nothing: {', '.join(map(str, answer['unknown']))}")
    return "\n".join(lines)
