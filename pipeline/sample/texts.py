"""Prompt/response text for each task label of the bundled sample, drawn from `vocab`."""

from __future__ import annotations

import random
import re

from pipeline.sample import vocab as v

LABELS: tuple[str, ...] = (
    "coding",
    "math",
    "support",
    "writing",
    "translation",
    "summarization",
    "qa",
)
VERSIONS = ("3.11.4", "2.4.1.0", "1.0.0.12", "18.2", "4.2.1.7", "0.9.3", "5.1.0.3")


def sentence(rng: random.Random) -> str:
    """One filler sentence from the small grammar."""
    return (
        f"{rng.choice(v.SUBJECTS)} {rng.choice(v.VERBS)} {rng.choice(v.OBJECTS)} "
        f"{rng.choice(v.ADVERBIALS)}."
    )


def passage(rng: random.Random, lo: int, hi: int) -> str:
    """A few filler sentences."""
    return " ".join(sentence(rng) for _ in range(rng.randint(lo, hi)))


def _fill(template: str, slots: dict[str, str]) -> str:
    # Empty openers/closers leave double or edge spaces: tidy them so wording stays natural.
    text = template.format(**slots)
    return re.sub(r"[ ]{2,}", " ", text).strip()


def _common(rng: random.Random) -> dict[str, str]:
    return {
        "opener": rng.choice(v.OPENERS),
        "closer": rng.choice(v.CLOSERS),
        "filler": sentence(rng),
        "filler2": sentence(rng),
        "filler3": sentence(rng),
    }


def _coding(rng: random.Random, s: dict[str, str]) -> tuple[str, str, str]:
    task = rng.choice(v.CODING_TASKS)
    s |= {
        "lang": rng.choice(v.CODING_LANGS),
        "lang_b": rng.choice(v.CODING_LANGS),
        "task": task,
        "task_past": "tried to " + task,
        "error": rng.choice(v.CODING_ERRORS),
        "version": rng.choice(VERSIONS),
    }
    return rng.choice(v.CODING_PROMPTS), rng.choice(v.CODING_RESPONSES), task.split()[-1]


def _math(rng: random.Random, s: dict[str, str]) -> tuple[str, str, str]:
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 999)
    s |= {
        "a": str(a),
        "b": str(b),
        "c": str(c),
        "topic": rng.choice(v.MATH_TOPICS),
        "year": str(rng.randint(1990, 2023)),
    }
    prompt = rng.choice(v.MATH_PROMPTS)
    # The two templates with a single exact answer get it right; the rest get a plausible number.
    if "times" in prompt:
        s["r"] = str(a * b)
    elif "Solve for x" in prompt:
        s["r"] = f"{(c - b) / a:.4g}"
    else:
        s["r"] = str(a * b + c)
    return prompt, rng.choice(v.MATH_RESPONSES), s["topic"]


def _support(rng: random.Random, s: dict[str, str]) -> tuple[str, str, str]:
    # Order numbers, prices and dates are hard negatives for PII redaction.
    order = rng.choice(("ORD-{:08d}", "#{:07d}", "A{:06d}")).format(rng.randint(0, 9_999_999))
    s |= {
        "item": rng.choice(v.SUPPORT_ITEMS),
        "problem": rng.choice(v.SUPPORT_PROBLEMS),
        "order": order,
        "price": f"{rng.randint(5, 1999):,}.{rng.randint(0, 99):02d}",
        "date": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    }
    return rng.choice(v.SUPPORT_PROMPTS), rng.choice(v.SUPPORT_RESPONSES), s["item"]


def _writing(rng: random.Random, s: dict[str, str]) -> tuple[str, str, str]:
    theme = rng.choice(v.WRITING_THEMES)
    s |= {
        "form": rng.choice(v.WRITING_FORMS),
        "theme": theme,
        "theme_title": theme.title(),
        "tone": rng.choice(v.WRITING_TONES),
        "n": str(rng.choice((50, 80, 100, 150, 200, 300))),
        "filler": passage(rng, 2, 5),
    }
    return rng.choice(v.WRITING_PROMPTS), rng.choice(v.WRITING_RESPONSES), s["form"]


def _translation(rng: random.Random, s: dict[str, str]) -> tuple[str, str, str]:
    lang = rng.choice(v.TRANSLATION_LANGS)
    if rng.random() < 0.5:
        src, dst = rng.choice(v.TRANSLATION_PHRASES)
    else:
        src = sentence(rng)
        dst = f"[{lang}] {src}"
    s |= {"lang": lang, "src": src, "dst": dst}
    return rng.choice(v.TRANSLATION_PROMPTS), rng.choice(v.TRANSLATION_RESPONSES), lang


def _summarization(rng: random.Random, s: dict[str, str]) -> tuple[str, str, str]:
    sentences = [sentence(rng) for _ in range(rng.randint(4, 9))]
    s |= {
        "passage": " ".join(sentences),
        "first": sentences[0],
        "second": sentences[1],
        "headline": sentences[0].split(" ", 3)[-1].rstrip(".").capitalize(),
    }
    return rng.choice(v.SUMMARY_PROMPTS), rng.choice(v.SUMMARY_RESPONSES), "the second point"


def _qa(rng: random.Random, s: dict[str, str]) -> tuple[str, str, str]:
    if rng.random() < 0.4:
        question, answer = rng.choice(v.QA_FACTS)
    else:
        question, answer = rng.choice(v.QA_ENTITY_PROMPTS)
        slots = {
            "city": rng.choice(v.CITIES),
            "n": str(rng.randint(3, 950)),
            "thing": rng.choice(v.THINGS),
        }
        question, answer = question.format(**slots), answer.format(**slots)
    s |= {"question": question, "answer": answer, "claim": sentence(rng).lower().rstrip(".")}
    return rng.choice(v.QA_PROMPTS), rng.choice(v.QA_RESPONSES), "the source"


_MAKERS = {
    "coding": _coding,
    "math": _math,
    "support": _support,
    "writing": _writing,
    "translation": _translation,
    "summarization": _summarization,
    "qa": _qa,
}


def make_turn(rng: random.Random, label: str) -> tuple[str, str, str]:
    """A first turn of `label`: (prompt, response, a topic word a follow-up can reuse)."""
    slots = _common(rng)
    prompt_t, response_t, topic = _MAKERS[label](rng, slots)
    return _fill(prompt_t, slots), _fill(response_t, slots), topic


def make_follow_up(rng: random.Random, topic: str) -> tuple[str, str]:
    """A later turn of a session that stays on the first turn's topic."""
    slots = {"word": topic, "filler": passage(rng, 1, 2)}
    # A context sentence keeps follow-ups distinct: they are not planted duplicates.
    prompt = _fill(rng.choice(v.FOLLOW_UPS), slots) + " For context: " + sentence(rng)
    return prompt, _fill(rng.choice(v.FOLLOW_UP_RESPONSES), slots)
