"""Build grounded context for a generator: retrieve within the caller's scope and filters,
add neighbouring session turns, merge near-identical passages, and pack the result into a
token budget counted exactly with the generator's tokenizer.

Packing is greedy and exact: each passage is tried in priority order (hits by rank, then
neighbours by their hit's rank) by rendering the whole filled prompt with it and counting
its tokens; it stays only if the total is within the budget. So the returned prompt never
exceeds the budget, whatever the tokenizer does at passage boundaries or with the numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.errors import UserInputError
from pipeline.rag.passages import (
    SEPARATOR,
    Passage,
    block,
    in_order,
    merge_near_identical,
    neighbours_of,
    passage_of,
    render,
)
from pipeline.rag.settings import RagSettings
from pipeline.rag.tokens import TokenCounter, token_counter
from pipeline.service.limits import QUERY_TEXT_MAX
from pipeline.store.scope import Scope


@dataclass
class RagContext:
    """A filled prompt, the passages it cites (numbered) and what the budget left out."""

    question: str
    prompt: str  # the filled template: what a generator is sent
    context: str  # the numbered passages alone
    citations: list[dict[str, Any]]  # {n, id, rid, role, of, score, scores, merged, ...}
    tokens: int  # of `prompt`, counted with `tokenizer`
    budget: int
    tokenizer: str
    dropped: list[dict[str, Any]]  # {id, role, of, score, tokens, reason}: did not fit
    retrieved: int  # hits the search returned
    took_ms: float

    def cited_ids(self, include_merged: bool = True) -> list[str]:
        """Record ids in the context; near-identical records merged into a passage count too."""
        out = []
        for citation in self.citations:
            out.append(citation["id"])
            if include_merged:
                out.extend(citation["merged"])
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_question(text: str | None) -> str:
    """The question stripped, or a UserInputError (the limits of a search query)."""
    question = (text or "").strip()
    if not question:
        raise UserInputError("empty question: give the text to answer")
    if len(question) > QUERY_TEXT_MAX:
        raise UserInputError(f"question is {len(question)} characters; at most {QUERY_TEXT_MAX}")
    return question


def build_context(
    searcher: Any,
    question: str,
    settings: RagSettings,
    *,
    scope: Scope,
    filters: Sequence[Any] = (),
    candidates: int | None = None,
    budget: int | None = None,
    counter: TokenCounter | None = None,
) -> RagContext:
    """Retrieve, merge and pack context for `question` within `scope` and `filters`."""
    started = time.perf_counter()
    question = check_question(question)
    budget = settings.budget_tokens if budget is None else budget
    if not isinstance(budget, int) or budget < 1:
        raise UserInputError(f"budget={budget!r}: expected a whole number of tokens >= 1")
    counter = counter or token_counter(settings.tokenizer)
    hits = searcher.search(
        question, k=candidates or settings.candidates, mode=settings.mode,
        filters=filters, scope=scope,
    )  # fmt: skip
    records, sessions = searcher.records(
        [h.rid for h in hits], scope, with_session=settings.neighbours > 0
    )
    ranked = [
        passage_of(
            records[h.rid], "hit", rank, settings.merge_ngram, score=h.score, scores=h.scores
        )
        for rank, h in enumerate(hits, start=1)
        if h.rid in records
    ]
    passages = merge_near_identical(ranked, settings.merge_jaccard)
    extra = neighbours_of(passages, sessions, settings)
    extra = _drop_repeats(passages, extra, settings.merge_jaccard)
    kept, dropped, tokens = _pack(passages + extra, question, settings, budget, counter)
    prompt, context, ordered = render(kept, question, settings)
    return RagContext(
        question=question, prompt=prompt, context=context,
        citations=[p.citation(n) for n, p in enumerate(ordered, start=1)],
        tokens=tokens, budget=budget, tokenizer=counter.name, dropped=dropped,
        retrieved=len(hits), took_ms=(time.perf_counter() - started) * 1000,
    )  # fmt: skip


def _drop_repeats(kept: list[Passage], extra: list[Passage], threshold: float) -> list[Passage]:
    """Neighbours near-identical to a passage already there are merged into it, not repeated."""
    merged = merge_near_identical([*kept, *extra], threshold)
    return [p for p in merged if p.role == "neighbour"]


def _pack(
    candidates: Iterable[Passage],
    question: str,
    settings: RagSettings,
    budget: int,
    counter: TokenCounter,
) -> tuple[list[Passage], list[dict[str, Any]], int]:
    """Greedy in priority order; the kept set is always checked on the whole filled prompt.

    Counting the whole prompt at every trial costs a full encode per candidate (most of a
    build's time). So the first pass sums exact counts of each numbered passage, of the
    separators and of the empty template; one exact count of the result confirms it. A
    tokenizer that merges across passage boundaries can make that sum wrong: when the
    exact count is over the budget, the pass is redone counting every trial exactly.
    """
    candidates = list(candidates)
    empty = counter.count(render([], question, settings)[0])
    if empty > budget:
        raise UserInputError(
            f"the template and question alone are {empty} tokens, over the budget of {budget}"
        )
    sizes: dict[tuple[str, int, bool], int] = {}
    separator = counter.count(SEPARATOR)
    # Most passages keep the number of their place among the candidates: count them so in
    # one batch; a passage renumbered by a neighbour before it is counted when it comes up.
    first = [(p.id, n, p.truncated) for n, p in enumerate(candidates, start=1)]
    texts = [block(p, n, settings) for n, p in enumerate(candidates, start=1)]
    sizes.update(zip(first, counter.count_many(texts), strict=True))

    def size(passage: Passage, n: int) -> int:
        key = (passage.id, n, passage.truncated)
        if key not in sizes:
            sizes[key] = counter.count(block(passage, n, settings))
        return sizes[key]

    def summed(passages: list[Passage]) -> int:
        ordered = in_order(passages)
        blocks = sum(size(p, n) for n, p in enumerate(ordered, start=1))
        return empty + blocks + separator * max(0, len(ordered) - 1)

    def exact(passages: list[Passage]) -> int:
        return counter.count(render(passages, question, settings)[0])

    kept, dropped = _greedy(candidates, question, settings, budget, counter, summed, size)
    tokens = exact(kept)
    if tokens > budget:
        kept, dropped = _greedy(candidates, question, settings, budget, counter, exact, size)
        tokens = exact(kept)
    return kept, dropped, tokens


def _greedy(
    candidates: list[Passage],
    question: str,
    settings: RagSettings,
    budget: int,
    counter: TokenCounter,
    total: Callable[[list[Passage]], int],
    size: Callable[[Passage, int], int],
) -> tuple[list[Passage], list[dict[str, Any]]]:
    kept: list[Passage] = []
    dropped: list[dict[str, Any]] = []
    for passage in candidates:
        if total([*kept, passage]) <= budget:
            kept.append(passage)
            continue
        if (
            not kept
            and passage.role == "hit"
            and _truncate(passage, question, settings, budget, counter)
        ):
            kept.append(passage)  # the best hit, cut to fit, rather than no context at all
            continue
        dropped.append(
            {"id": passage.id, "role": passage.role, "of": passage.of, "score": passage.score,
             "tokens": size(passage, len(kept) + 1), "reason": "budget"}
        )  # fmt: skip
    return kept, dropped


def _truncate(
    passage: Passage, question: str, settings: RagSettings, budget: int, counter: TokenCounter
) -> bool:
    """Cut the passage's text until the prompt fits; False when not even a token fits."""
    whole = (passage.prompt, passage.response)
    room = budget - counter.count(render([], question, settings)[0])
    text = passage.text
    while room > 0:
        cut = counter.cut(text, room)
        passage.prompt, passage.response, passage.truncated = cut, None, True
        excess = counter.count(render([passage], question, settings)[0]) - budget
        if excess <= 0:
            return bool(cut.strip())
        room -= excess  # the passage template's own tokens (its number...) did not fit
    (passage.prompt, passage.response), passage.truncated = whole, False
    return False
