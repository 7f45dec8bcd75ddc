"""`pipeline predict` (texts or a file, with the registered champion), `pipeline predictions`
(the DVC stage) and `pipeline records disagreements`. Nothing here imports torch."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.commands.options import add_config_options, config_path, load_config, positive_int

EXAMPLE = 'pipeline predict "How do I get a refund for a damaged parcel?"'


def register(sub: argparse._SubParsersAction) -> None:
    """Add `predict` and `predictions` (imports nothing heavy)."""
    parser = sub.add_parser(
        "predict",
        help="label texts (or a file) with the registered champion, on ONNX Runtime",
        description="Predict the label of each TEXT, or of every row of --input (any format "
        "dedup reads; rows need a prompt or text field), with a registered model version: "
        "`champion` unless --model says another alias or a version number. Texts longer "
        "than the model reads are cut as in training, and the output says so.",
        epilog=f"example: {EXAMPLE}",
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to label")
    parser.add_argument("--input", type=Path, help="a .jsonl/.json/.csv/.parquet[.gz] file")
    parser.add_argument("--output", type=Path, help="with --input: a .parquet or .jsonl file")
    parser.add_argument(
        "--model", default="champion", metavar="REF",
        help="an alias or a version number of the registered model (default: champion)",
    )  # fmt: skip
    add_config_options(parser)
    parser.add_argument("--json", action="store_true", help="print predictions as JSON")
    parser.set_defaults(func=_predict)

    stage = sub.add_parser(
        "predictions",
        help="the champion's label for every kept record (the DVC `predictions` stage)",
        description="Predict every kept record with the version reports/champion.json names "
        "and publish data/predictions/predictions.parquet (predicted_label, "
        "predicted_confidence, model_version by record id) and reports/predictions.json.",
    )
    add_config_options(stage)
    stage.add_argument("--json", action="store_true", help="print the report as JSON")
    stage.set_defaults(func=_stage)


def register_records(inner: argparse._SubParsersAction) -> None:
    """Add `records disagreements` to the `records` command's actions."""
    from pipeline.commands.dedup import DEFAULT_STORE

    parser = inner.add_parser(
        "disagreements",
        help="labelled records the champion predicts otherwise, most confident first",
    )
    add_config_options(parser)
    parser.add_argument("--store", help=f"store file (default: paths.store, {DEFAULT_STORE})")
    parser.add_argument("--limit", type=positive_int, default=20, help="how many (default 20)")
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.set_defaults(func=_disagreements)


def _predict(args: argparse.Namespace) -> int:
    from pipeline.errors import UserInputError
    from pipeline.predict.settings import PredictSettings

    if bool(args.texts) == bool(args.input):
        raise UserInputError("give TEXT... or --input FILE (one of the two)")
    if bool(args.input) != bool(args.output):
        raise UserInputError("--input and --output go together")
    root = Path(args.root)
    settings = PredictSettings.from_cfg(load_config(args, plain=True), root)
    if args.input:
        return _predict_file(args.input, args.output, args.model, settings)
    from pipeline.predict.inputs import check_text

    texts = [check_text(t, settings.max_text_chars, f"text {i}")
             for i, t in enumerate(args.texts, start=1)]  # fmt: skip
    predictor = _load(settings, args.model)
    predictions = predictor.predict(texts)
    rows = [{**p.to_dict(), "model": predictor.name, "version": predictor.version}
            for p in predictions]  # fmt: skip
    if args.json:
        import json

        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    for text, p in zip(texts, predictions, strict=True):
        cut = "  (truncated)" if p.truncated else ""
        print(f"{p.label:<16} {p.confidence:.3f}{cut}  {_short(text, 60)}")
    print(f"model: {predictor.name} v{predictor.version}", file=sys.stderr)
    return 0


def _load(settings: Any, ref: str) -> Any:
    from pipeline.predict.model import Predictor

    return Predictor.load(settings, ref)


def _predict_file(source: Path, target: Path, ref: str, settings: Any) -> int:
    from pipeline.errors import UserInputError
    from pipeline.predict.inputs import file_rows
    from pipeline.predict.output import PredictionWriter

    if target.suffix.lower() not in (".parquet", ".jsonl"):
        raise UserInputError(f"{target}: the output must end in .parquet or .jsonl")
    predictor = _load(settings, ref)
    started, done, last = time.perf_counter(), 0, 0
    with PredictionWriter(target, predictor) as writer:
        batch: list[dict] = []
        for row in file_rows(source, settings.max_text_chars):
            batch.append(row)
            if len(batch) == settings.batch_size:
                done += writer.write(batch)
                batch = []
            if done - last >= settings.progress_every:
                last = done
                rate = done / max(time.perf_counter() - started, 1e-9)
                print(f"predict: {done} rows ({rate:.0f}/s)", file=sys.stderr, flush=True)
        done += writer.write(batch)
    seconds = time.perf_counter() - started
    print(f"predict: {done} rows -> {target} in {seconds:.1f} s "
          f"({predictor.name} v{predictor.version})", file=sys.stderr)  # fmt: skip
    return 0


def _stage(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.stages.predictions import run

    report = run(load_config(args), Path(args.root))
    text = (f"predictions: {report['records']} records with v{report['model_version']}, "
            f"{report['disagreements']} disagreements with the given label")  # fmt: skip
    emit(report, args.json, text)
    return 0


def _disagreements(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.commands.dedup import DEFAULT_STORE
    from pipeline.store.disagreements import disagreements

    store = Path(args.store) if args.store else config_path(args, "paths.store", DEFAULT_STORE)
    found = disagreements(store, args.limit)
    lines = [
        f"{r['predicted_confidence']:.3f}  {r['id']:<14} given {_short(r['label'], 12):<12} "
        f"predicted {_short(r['predicted_label'], 12):<12} {_short(r['prompt'], 50)}"
        for r in found
    ]
    emit(found, args.json, "\n".join(lines) or "no disagreements")
    return 0


def _short(text: Any, width: int) -> str:
    text = "" if text is None else str(text).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"
