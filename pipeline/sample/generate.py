"""The sample's records and their ground truth, from one seeded random generator (no I/O)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.sample import plant, texts, vocab
from pipeline.sample.similarity import SimilarityIndex, jaccard, joined, shingles

# file name -> (share of base records, share synthetic, source, extra fields that go to metadata)
FILES: dict[str, tuple[float, float, str, tuple[str, ...]]] = {
    "chat_2024h1.jsonl": (0.36, 0.1, "assistant-chat", ("client", "model_version")),
    "chat_2024h2.jsonl": (0.20, 0.1, "assistant-chat", ("client", "model_version")),
    "annotators.jsonl": (0.10, 0.0, "annotation-team", ("annotator", "batch")),
    "synthetic.jsonl.gz": (0.12, 1.0, "self-instruct", ("generator", "temperature")),
    "support_export.csv": (0.08, 0.0, "helpdesk", ("channel",)),
    "writing_batch.json": (0.06, 0.3, "writing-contest", ("contest_round",)),
    "qa_batch.parquet": (0.08, 0.4, "qa-collection", ("difficulty",)),
}
EXTRA_VALUES: dict[str, tuple[Any, ...]] = {
    "client": ("web", "ios", "android", "api"),
    "model_version": ("assistant-2024.1", "assistant-2024.2", "assistant-2024.3"),
    "annotator": ("ann-01", "ann-02", "ann-03", "ann-04", "ann-05"),
    "batch": (1, 2, 3, 4),
    "generator": ("template-v1", "template-v2"),
    "temperature": (0.2, 0.7, 1.0),
    "channel": ("email", "chat", "phone"),
    "contest_round": ("spring", "autumn"),
    "difficulty": ("easy", "medium", "hard"),
}
EXACT_PLAN = {"identical": 24, "case": 14, "whitespace": 14, "unicode": 10}
NEAR_COPIES = 40
PII_RECORDS = 160
LABEL_NOISE = 0.02  # a few records carry a wrong label, as human labels do
START = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class Sample:
    """Records per output file (dicts in file order) and the planted ground truth."""

    files: dict[str, list[dict[str, Any]]]
    truth: dict[str, Any] = field(default_factory=dict)


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.users = [f"u{i:04d}" for i in range(1, 241)]
        self.next_id = 0
        self.index = SimilarityIndex(max_jaccard=0.6)

    def new_id(self) -> str:
        self.next_id += 1
        return f"r{self.next_id:05d}"

    def timestamp(self, after: datetime | None = None) -> datetime:
        if after is not None:
            return after + timedelta(seconds=self.rng.randint(30, 900))
        return START + timedelta(seconds=self.rng.randrange(350 * 86400))

    def base_record(self, file: str, label: str, prompt: str, response: str) -> dict[str, Any]:
        rng = self.rng
        _, synthetic, source, extras = FILES[file]
        shown_label = rng.choice(texts.LABELS) if rng.random() < LABEL_NOISE else label
        tags = rng.sample(vocab.TAGS_BY_LABEL[label], rng.randint(0, 2))
        if rng.random() < 0.2:
            tags.append(rng.choice(vocab.COMMON_TAGS))
        rec: dict[str, Any] = {
            "id": self.new_id(),
            "prompt": prompt,
            "response": response,
            "label": shown_label,
            "user_id": rng.choice(self.users),
            "created_at": self.timestamp(),
            "quality": rng.choice((1, 2, 3, 3, 4, 4, 4, 5, 5)) if rng.random() > 0.15 else None,
            "origin": "synthetic" if rng.random() < synthetic else "real",
            "tags": tags,
            "source": source,
        }
        for key in extras:
            rec[key] = rng.choice(EXTRA_VALUES[key])
        return rec

    def unique_turn(self, make) -> tuple[str, str, str] | None:
        for _ in range(30):
            prompt, response, topic = make()
            # Prompt alone and prompt+response: ground truth holds for either dedup field set.
            candidates = [prompt, joined(prompt, response)]
            if not self.index.too_close(candidates):
                self.index.add(candidates)
                return prompt, response, topic
        return None


def _pick_weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def generate(seed: int = 0, n_records: int = 3000) -> Sample:
    """Build the sample: base records in sessions, then planted PII and duplicates."""
    b = _Builder(seed)
    rng = b.rng
    files: dict[str, list[dict[str, Any]]] = {name: [] for name in FILES}
    shares = {name: spec[0] for name, spec in FILES.items()}
    scale = n_records / 3000  # planted counts are set for the default size
    exact_plan = {k: max(1, round(n * scale)) for k, n in EXACT_PLAN.items()}
    n_near = max(6, round(NEAR_COPIES * scale))
    n_copies = sum(exact_plan.values()) + n_near
    n_base = n_records - n_copies
    sessions = 0
    while sum(map(len, files.values())) < n_base:
        file = _pick_weighted(rng, shares)
        label = rng.choice(texts.LABELS)
        first = b.unique_turn(lambda label=label: texts.make_turn(rng, label))
        if first is None:
            continue
        prompt, response, topic = first
        rec = b.base_record(file, label, prompt, response)
        turns = 1 if rng.random() < 0.72 else rng.randint(2, 4)
        files[file].append(rec)
        if turns == 1:
            continue
        sessions += 1
        session_id = f"s{sessions:04d}"
        rec |= {"session_id": session_id, "turn": 1}
        for turn in range(2, turns + 1):
            follow = b.unique_turn(lambda topic=topic: (*texts.make_follow_up(rng, topic), topic))
            if follow is None:
                break
            child = b.base_record(file, label, follow[0], follow[1])
            child |= {
                "label": rec["label"],
                "user_id": rec["user_id"],
                "session_id": session_id,
                "parent_id": rec["id"],
                "turn": turn,
                "created_at": b.timestamp(after=rec["created_at"]),
                "origin": rec["origin"],
            }
            files[file].append(child)
            rec = child
    truth: dict[str, Any] = {"seed": seed, "sessions": sessions}
    truth["pii"] = _plant_pii(rng, files, max(10, round(PII_RECORDS * scale)))
    exact, near = _plant_duplicates(b, files, set(truth["pii"]["records"]), exact_plan, n_near)
    truth["exact_duplicates"] = exact
    truth["near_duplicates"] = near
    return Sample(files=files, truth=truth)


def _plant_pii(
    rng: random.Random, files: dict[str, list[dict[str, Any]]], n_records: int
) -> dict[str, Any]:
    everything = [rec for name in sorted(files) for rec in files[name]]
    chosen = rng.sample(everything, n_records)
    per_record: dict[str, dict[str, int]] = {}
    for i, rec in enumerate(chosen):
        counts: Counter[str] = Counter()
        kinds = [plant.PII_TYPES[i % len(plant.PII_TYPES)]]  # every type planted evenly
        if rng.random() < 0.25:
            kinds.append(rng.choice(plant.PII_TYPES))
        for kind in kinds:
            field_name = "response" if rng.random() < 0.2 else "prompt"
            rec[field_name] = f"{rec[field_name]} {plant.pii_sentence(rng, kind)}"
            counts[kind] += 1
        per_record[rec["id"]] = dict(sorted(counts.items()))
    by_type = Counter()
    for counts in per_record.values():
        by_type.update(counts)
    return {"by_type": dict(sorted(by_type.items())), "records": dict(sorted(per_record.items()))}


def _copy(b: _Builder, src: dict[str, Any], prompt: str, response: str) -> dict[str, Any]:
    rng = b.rng
    rec = {k: v for k, v in src.items() if k not in ("session_id", "parent_id", "turn")}
    rec |= {
        "id": b.new_id(),
        "prompt": prompt,
        "response": response,
        "user_id": rng.choice(b.users),
        "created_at": b.timestamp(),
        "quality": rng.choice((1, 2, 3, 4, 5, None)),
        "origin": rng.choice(("real", "synthetic")),
    }
    return rec


def _place(rng: random.Random, files: dict[str, list[dict[str, Any]]], rec: dict) -> None:
    name = rng.choice(sorted(files))
    files[name].insert(rng.randint(0, len(files[name])), rec)


def _plant_duplicates(
    b: _Builder,
    files: dict[str, list[dict[str, Any]]],
    pii_ids: set[str],
    exact_plan: dict[str, int],
    n_near: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = b.rng
    singles = [
        rec
        for name in sorted(files)
        for rec in files[name]
        if rec.get("turn", 1) == 1 and rec["id"] not in pii_ids
    ]
    rng.shuffle(singles)
    long_ones = [r for r in singles if len(joined(r["prompt"], r["response"]).split()) >= 60]
    near_sources = long_ones[: n_near - n_near // 8]  # some sources get two copies
    used = {r["id"] for r in near_sources}
    exact_sources = [r for r in singles if r["id"] not in used]
    exact: list[dict[str, Any]] = []
    pos = 0
    n_sources = sum(exact_plan.values()) * 4 // 5  # a few sources get two copies
    for variant, count in exact_plan.items():
        for _ in range(count):
            src = exact_sources[pos % n_sources]
            pos += 1
            fn = plant.VARIANTS[variant]
            copy = _copy(b, src, fn(src["prompt"], rng), fn(src["response"], rng))
            _place(rng, files, copy)
            exact.append({"id": copy["id"], "duplicate_of": src["id"], "variant": variant})
    near: list[dict[str, Any]] = []
    for i in range(n_near):
        src = near_sources[i % len(near_sources)]
        made = plant.near_copy(src["prompt"], src["response"], rng, 0.85, 0.95)
        if made is None:
            continue
        copy = _copy(b, src, made[0], src["response"])
        _place(rng, files, copy)
        sim_prompt = jaccard(shingles(src["prompt"]), shingles(made[0]))
        near.append(
            {
                "id": copy["id"],
                "duplicate_of": src["id"],
                "jaccard": round(made[1], 4),
                "jaccard_prompt": round(sim_prompt, 4),
            }
        )
    return exact, near
