"""Benchmark: every model in conf/model/ and a TF-IDF baseline on t0-prompts, two splits;
then Lightning's overhead against a plain PyTorch loop on the same model and data.

    .venv/bin/python benchmarks/train.py            # bounded: < 40 min on 2 cores
    .venv/bin/python benchmarks/train.py --quick    # a few minutes: smaller samples, 1-2 epochs
    .venv/bin/python benchmarks/train.py --default  # the default model, the probe and TF-IDF
                                                    # on the sample and a t0 template subset
    .venv/bin/python benchmarks/train.py --full-test  # the same on ALL t0 template-holdout
                                                      # test rows, networks on a train subset
    .venv/bin/python benchmarks/train.py --cost     # every conf/model on the sample: time,
                                                    # epochs, RSS, macro-F1, beside TF-IDF + LR

--full-test and --cost took ~35 and ~30 min at load ~15 (five other jobs on the 2 cores),
with --jobs 5 --max-minutes 20 for --cost; an idle machine needs a fraction of that.

Data: ../shared/data/t0-prompts through the real dedup stage (`data=t0_prompts`, label =
task), cached in --workdir. Splits (the train stage's `assign_splits`):
  dataset   one source dataset per task held out for test (`split.holdout_groups` on
            metadata.source_dataset): does the model generalise to an unseen source?
  template  ~20% of the prompt templates held out for test (metadata.template).
Training rows are subsampled per label and epochs/time are capped (2 cores); the table
says how many rows each model saw. Appends a section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from results import offline

offline()

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
T0 = ROOT.parent / "shared" / "data" / "t0-prompts" / "t0-prompts.jsonl.gz"
# The goal-bearing model first, then the default; the rest share what time is left.
FIRST = ["finetune", "linear_probe", "textcnn", "transformer"]
MODELS = sorted(
    (p.stem for p in (ROOT / "conf" / "model").glob("*.yaml")),
    key=lambda m: (FIRST.index(m) if m in FIRST else len(FIRST), m),
)
SEED = 42


@dataclass(frozen=True)
class Budget:
    """Rows per label and per-model caps; `full` fits 40 min on 2 cores, `quick` a few."""

    train_per_label: int
    val_per_label: int
    test_per_label: int
    epochs: dict[str, int]
    minutes: dict[str, float]  # Lightning `max_time` per fit


# Sized for 2 cores shared with other jobs (load ~6 per core while measured): each fit is
# capped in time, so the finetune may see less than one epoch; the table says so.
FULL = Budget(
    train_per_label=200,
    val_per_label=20,
    test_per_label=60,
    epochs={"linear_probe": 30, "finetune": 3, "textcnn": 8, "bigru": 4, "transformer": 8},
    minutes={
        "linear_probe": 1.0,
        "finetune": 5.0,
        "textcnn": 1.0,
        "bigru": 1.0,
        "transformer": 1.0,
    },
)
QUICK = Budget(
    train_per_label=40,
    val_per_label=10,
    test_per_label=20,
    epochs={"linear_probe": 5, "finetune": 1, "textcnn": 2, "bigru": 1, "transformer": 2},
    minutes={m: 0.5 for m in FULL.epochs},
)
# A longer run for the finetune's goals: 5x the training rows and up to 35 minutes per fit.
LONG = Budget(
    train_per_label=1000,
    val_per_label=40,
    test_per_label=60,
    epochs={**FULL.epochs, "finetune": 3},
    minutes={**FULL.minutes, "finetune": 35.0},
)
# The default model against the probe and the baseline: 9,200 of t0's records (template
# holdout), stratified per label; embedding them takes ~10 min on 2 cores the first time.
DEFAULT = Budget(
    train_per_label=800,
    val_per_label=100,
    test_per_label=250,
    epochs={"hybrid": 20, "linear_probe": 30},
    minutes={"hybrid": 6.0, "linear_probe": 3.0},
)
TOTAL_MINUTES = {"full": 38.0, "quick": 12.0, "long": 80.0}  # later fits are skipped
RESERVE_S = 150  # kept for the overhead run and the report


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def records_parquet(workdir: Path) -> Path:
    """data/dedup/records.parquet for t0-prompts, made once by the real dedup stage."""
    from pipeline.config import compose
    from pipeline.stages import dedup

    path = workdir / "data" / "dedup" / "records.parquet"
    if not path.exists():
        log("dedup stage on t0-prompts (once; cached in the workdir)")
        cfg = compose(["data=t0_prompts", f"data.path={T0}", "tracking.uri=sqlite:///mlflow.db"])
        dedup.run(cfg, workdir)
    return path


def labelled_frame(path: Path) -> Any:
    """Kept records with `label` (the task) and `text` (the prompt), as the train stage reads."""
    from pipeline.train.data import DataSettings, labelled, read_records

    frame, _ = labelled(read_records(path), DataSettings("label", "prompt"), str(path))
    return frame


def holdout(frame: Any, kind: str, seed: int) -> tuple[str, list[str]]:
    """The column and the values whose records form the test split."""
    from pipeline.train.data import column_values

    rng = np.random.default_rng(seed)
    if kind == "dataset":
        sources = column_values(frame, "metadata.source_dataset")
        pairs = sorted(set(zip(frame["label"], sources, strict=True)))
        chosen = []
        for label in sorted(frame["label"].unique()):
            candidates = [s for lab, s in pairs if lab == label]
            chosen.append(str(rng.choice(candidates)))
        return "metadata.source_dataset", sorted(chosen)
    sources = column_values(frame, "metadata.source_dataset")
    templates = column_values(frame, "metadata.template")
    chosen = set()
    for source in sorted(sources.unique()):
        names = sorted(templates[sources == source].unique())
        if len(names) >= 2:  # a single-template source keeps its only template for training
            k = max(1, round(0.2 * len(names)))
            chosen.update(str(t) for t in rng.choice(names, size=k, replace=False))
    return "metadata.template", sorted(chosen)


def split_and_subsample(frame: Any, kind: str, budget: Budget, seed: int) -> tuple[Any, dict]:
    """assign_splits with the holdout, then a seeded per-label subsample of each side."""
    import pandas as pd

    from pipeline.train.split import SplitSettings, assign_splits

    column, values = holdout(frame, kind, seed)
    settings = SplitSettings.from_cfg(
        {"val_fraction": 0.1, "holdout_groups": {"column": column, "values": values}}, seed=seed
    )
    split = assign_splits(frame, settings)
    caps = {
        "train": budget.train_per_label,
        "val": budget.val_per_label,
        "test": budget.test_per_label,
    }
    parts = []
    for name, cap in caps.items():
        side = split[split["split"] == name]
        # A seeded shuffle, then the first `cap` rows of each label.
        parts.append(side.sample(frac=1.0, random_state=seed).groupby("label").head(cap))
    sub = pd.concat(parts).sort_values("rid", kind="stable").reset_index(drop=True)
    full_counts = split["split"].value_counts().to_dict()
    info = {
        "column": column,
        "held_out": values,
        "full": {k: int(full_counts.get(k, 0)) for k in caps},
        "used": {k: int((sub["split"] == k).sum()) for k in caps},
        "test_labels": sorted(sub.loc[sub["split"] == "test", "label"].unique().tolist()),
    }
    return (split, sub), info


def baseline_f1(train: Any, test: Any, labels: list[str]) -> tuple[float, float]:
    """TF-IDF + LR macro-F1 on `test` and the seconds taken."""
    from pipeline.evaluate.baseline import BaselineSettings, fit_baseline, predict_proba
    from pipeline.evaluate.metrics import macro_f1

    index = {label: i for i, label in enumerate(labels)}
    started = time.perf_counter()
    model = fit_baseline(
        train["text"].tolist(), train["label"].map(index).to_numpy(), BaselineSettings(), SEED
    )
    pred = predict_proba(model, test["text"].tolist(), len(labels)).argmax(axis=1)
    f1 = macro_f1(test["label"].map(index).to_numpy(), pred, labels)
    return f1, time.perf_counter() - started


def train_and_score(
    model: str,
    sub: Any,
    kind: str,
    budget: Budget,
    workdir: Path,
    records: Path,
    left_s: float,
    extra: tuple[str, ...] = (),
    data: str = "t0_prompts",
) -> dict[str, Any]:
    """Fit `model` through the train stage's `train_model`, score macro-F1 on the test rows
    (`extra`: more config overrides, `data`: the data config group)."""
    from omegaconf import OmegaConf, open_dict

    from pipeline.config import compose
    from pipeline.evaluate.metrics import macro_f1
    from pipeline.train.fit import Lineage, train_model
    from pipeline.train.inference import load_classifier
    from pipeline.train.settings import FitSettings

    cfg = compose(
        [
            f"model={model}",
            f"data={data}",
            f"seed={SEED}",
            f"trainer.max_epochs={budget.epochs[model]}",
            "trainer.enable_progress_bar=false",
            "trainer.log_every_n_steps=50",
            "tracking.uri=sqlite:///mlflow.db",
            "tracking.experiment=bench-train",
            *extra,
        ]
    )
    minutes = budget.minutes[model]
    total = max(30, int(min(minutes * 60, left_s)))
    with open_dict(cfg):
        # Lightning's "DD:HH:MM:SS" form: a dict would arrive as a DictConfig it rejects.
        cfg.trainer.max_time = f"00:00:{total // 60:02d}:{total % 60:02d}"
    config = OmegaConf.to_container(cfg, resolve=True)
    lineage = Lineage(records, "bench", "bench", f"bench-{kind}", config)
    work = workdir / "work" / f"{kind}-{model}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    result = train_model(FitSettings.from_cfg(cfg, workdir), sub, work, lineage)
    fit_s = time.perf_counter() - started
    models_dir = workdir / "models" / f"{kind}-{model}"
    models_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.checkpoint, models_dir / "best.ckpt")
    meta = {"labels": result.labels, "config": config}
    (models_dir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    classifier = load_classifier(models_dir, cache_dir=workdir / cfg.paths.embed_cache)
    test = sub[sub["split"] == "test"]
    started = time.perf_counter()
    probs = classifier.predict_proba(test["input"].tolist(), batch_size=64)
    predict_s = time.perf_counter() - started
    index = {label: i for i, label in enumerate(classifier.labels)}
    f1 = macro_f1(test["label"].map(index).to_numpy(), probs.argmax(axis=1), classifier.labels)
    return {
        "macro_f1": f1,
        "epochs": result.epochs,
        "best_val_macro_f1": result.best.get("val_macro_f1"),
        "fit_seconds": fit_s,
        "train_samples_per_s": result.train_samples_per_s,
        "predict_seconds": predict_s,
        # Lightning's `max_time` bounds the fit, not the features (embedding) before it.
        "time_capped": result.steps.get("fit", fit_s) >= total * 0.95,
        "steps": result.steps,  # seconds: features (embedding, hashing, tokens), fit, ...
        "train_rows": int((sub["split"] == "train").sum()),
    }


def overhead(sub: Any, quick: bool) -> dict[str, float]:
    """Samples/s of one TextCNN trained by a plain loop and by Lightning, interleaved."""
    import pytorch_lightning as pl
    import torch
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader

    from pipeline.config import compose
    from pipeline.train.inputs import Collate, TokenInputs
    from pipeline.train.module import RowsDataset
    from pipeline.train.tokenize import encode

    cfg = compose(["model=textcnn", "data=t0_prompts"])
    train = sub[sub["split"] == "train"]
    n = 256 if quick else 512
    tokens = encode(train["text"].tolist()[:n], max_length=128)
    labels_index = {label: i for i, label in enumerate(sorted(train["label"].unique()))}
    y = train["label"].map(labels_index).to_numpy()[:n]
    dataset = RowsDataset(tokens, y)
    epochs, repeats = (1, 2) if quick else (1, 3)

    def loader() -> DataLoader:
        generator = torch.Generator().manual_seed(SEED)
        return DataLoader(
            dataset, 64, shuffle=True, generator=generator, collate_fn=Collate(TokenInputs())
        )

    def fresh_net() -> torch.nn.Module:
        torch.manual_seed(SEED)
        return instantiate(cfg.model.net, num_labels=len(labels_index))

    def plain() -> float:
        net = fresh_net().train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        started = time.perf_counter()
        for _ in range(epochs):
            for ids, mask, target in loader():
                optimizer.zero_grad()
                loss = loss_fn(net(ids, mask), target)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                optimizer.step()
        return epochs * n / (time.perf_counter() - started)

    class Minimal(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = fresh_net()
            self.loss_fn = torch.nn.CrossEntropyLoss()

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            ids, mask, target = batch
            return self.loss_fn(self.net(ids, mask), target)

        def configure_optimizers(self) -> Any:
            return torch.optim.AdamW(self.parameters(), lr=1e-3)

    def lightning() -> float:
        module = Minimal()
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=epochs,
            gradient_clip_val=1.0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        started = time.perf_counter()  # fit() included whole: its setup is overhead too
        trainer.fit(module, train_dataloaders=loader())
        return epochs * n / (time.perf_counter() - started)

    plain_runs, lightning_runs = [], []
    for _ in range(repeats):  # interleaved, so load from other processes hits both alike
        plain_runs.append(plain())
        lightning_runs.append(lightning())
    p, lt = float(np.median(plain_runs)), float(np.median(lightning_runs))
    return {
        "samples": n,
        "epochs": epochs,
        "repeats": repeats,
        "plain_samples_per_s": p,
        "lightning_samples_per_s": lt,
        "overhead": 1.0 - lt / p,
        "plain_runs": plain_runs,
        "lightning_runs": lightning_runs,
    }


def goal(value: float | None, target: str, ok: bool | None) -> str:
    if value is None:
        return f"not measured (goal {target})"
    return f"{value:.3f} (goal {target}: {'met' if ok else 'NOT met'})"


def _flags(args: argparse.Namespace) -> str:
    """The command's options, as typed (for the Command line of the report)."""
    out = " --quick" if args.quick else " --long" if args.long else ""
    if args.models != MODELS:
        out += " --models " + " ".join(args.models)
    if args.splits != ["dataset", "template"]:
        out += " --splits " + " ".join(args.splits)
    return out + (" --no-overhead" if args.no_overhead else "")


def render(results: dict[str, Any], args: argparse.Namespace, seconds: float) -> str:
    """The RESULTS.md section: setup, the table, goals, overhead."""
    lines = [
        f"## Train: models vs TF-IDF baseline on t0-prompts, Lightning overhead "
        f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"- Machine: {os.cpu_count()} cores (`nproc`), {platform.machine()}, Python "
        f"{platform.python_version()}; shared with other jobs while it ran.",
        f"- Command: `.venv/bin/python benchmarks/train.py{_flags(args)}`"
        f" ({seconds / 60:.1f} min in total).",
        f"- Data: {results['records']} kept records after the dedup stage (exact + near "
        "duplicates removed from 55,185), label = task (8 classes), text = prompt.",
    ]
    b = results["budget"]
    lines.append(
        f"- Subsampled (2 cores): per label at most {b['train_per_label']} train, "
        f"{b['val_per_label']} val and {b['test_per_label']} test rows, seed {SEED}; epochs "
        f"capped at {b['epochs']} and each fit at {b['minutes']} minutes (Lightning "
        "`max_time`), early stopping on val macro-F1 (patience 3)."
    )
    for kind, split in results["splits"].items():
        info = split["info"]
        shown = ", ".join(info["held_out"][:10]) + (" ..." if len(info["held_out"]) > 10 else "")
        lines.append(
            f"- `{kind}` split: test = {info['column']} in {len(info['held_out'])} held-out "
            f"values ({shown}); "
            f"full split train/val/test = {info['full']['train']}/{info['full']['val']}/"
            f"{info['full']['test']}, used {info['used']['train']}/{info['used']['val']}/"
            f"{info['used']['test']}."
        )
    lines += [
        "",
        "| split | model | train rows | test macro-F1 | vs baseline | epochs | fit s "
        "| train samples/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, split in results["splits"].items():
        base = split["baseline"]["macro_f1"]
        used = split["info"]["used"]["train"]
        lines.append(
            f"| {kind} | TF-IDF + LR (scikit-learn) | {used} | {base:.3f} | 1.00x | - | "
            f"{split['baseline']['seconds']:.1f} | - |"
        )
        if "baseline_all" in split:
            full = split["info"]["full"]["train"]
            lines.append(
                f"| {kind} | TF-IDF + LR, all train rows | {full} | "
                f"{split['baseline_all']['macro_f1']:.3f} | "
                f"{split['baseline_all']['macro_f1'] / base:.2f}x | - | "
                f"{split['baseline_all']['seconds']:.1f} | - |"
            )
        for model, row in split["models"].items():
            if "error" in row:
                lines.append(f"| {kind} | {model} | {used} | {row['error']} | | | | |")
                continue
            capped = " (time cap)" if row["time_capped"] else ""
            lines.append(
                f"| {kind} | {model} | {used} | {row['macro_f1']:.3f} | "
                f"{row['macro_f1'] / base:.2f}x | {row['epochs']}{capped} | "
                f"{row['fit_seconds']:.0f} | {row['train_samples_per_s']:.0f} |"
            )
    ds, tp = results["splits"].get("dataset"), results["splits"].get("template")

    def f1(split: dict | None, model: str) -> float | None:
        return (split or {}).get("models", {}).get(model, {}).get("macro_f1")

    base_all = ds["baseline_all"]["macro_f1"] if ds and "baseline_all" in ds else None
    base_sub = ds["baseline"]["macro_f1"] if ds else None
    ft_ds, ft_tp = f1(ds, "finetune"), f1(tp, "finetune")
    near = base_all is not None and abs(base_all - 0.33) <= 0.1
    lines += [
        "",
        "Goals (met or not, as measured):",
        f"- TF-IDF + LR on the dataset holdout, all train rows: {goal(base_all, '~0.33', near)}"
        f"; on the subsample: {'-' if base_sub is None else f'{base_sub:.3f}'}.",
        f"- finetune, dataset holdout: {goal(ft_ds, '>= 0.60', (ft_ds or 0) >= 0.60)}.",
        f"- finetune, template holdout: {goal(ft_tp, '>= 0.95', (ft_tp or 0) >= 0.95)}.",
    ]
    o = results.get("overhead")
    if o:
        lines += [
            "",
            f"Lightning overhead (TextCNN from conf/model, {o['samples']} train rows x "
            f"{o['epochs']} epochs, batch 64, AdamW, grad clip 1.0; median of {o['repeats']} "
            "interleaved runs; Lightning timed over the whole `fit()`, logger/checkpointing off):",
            "",
            "| loop | samples/s | ratio |",
            "|---|---:|---:|",
            f"| plain PyTorch loop | {o['plain_samples_per_s']:.0f} | 1.00 |",
            f"| pytorch_lightning.Trainer | {o['lightning_samples_per_s']:.0f} | "
            f"{o['lightning_samples_per_s'] / o['plain_samples_per_s']:.2f} |",
            "",
            f"- Overhead {100 * o['overhead']:.1f}% (goal <= 5%: "
            f"{'met' if o['overhead'] <= 0.05 else 'NOT met'}).",
        ]
    return "\n".join(lines) + "\n"


def sample_frame() -> Any:
    """The bundled sample's kept records with the train stage's own split (default config)."""
    from pipeline.config import compose
    from pipeline.stages.train import TrainStageSettings, split_records

    frame, _ = split_records(TrainStageSettings.from_cfg(compose([]), ROOT))
    return frame


def default_vs_baseline(workdir: Path) -> list[str]:
    """Test macro-F1 of the default model, the probe and TF-IDF + LR on the same rows."""
    models = ["hybrid", "linear_probe"]
    subsets = {"sample": sample_frame()}
    records = records_parquet(workdir)
    subsets["t0 template holdout"] = split_and_subsample(
        labelled_frame(records), "template", DEFAULT, SEED
    )[0][1]
    lines = [
        "| data | train/val/test rows | TF-IDF + LR | "
        + " | ".join(f"{m} (fit s)" for m in models)
        + " |",
        "|---|---:|---:|" + "---:|" * len(models),
    ]
    for name, sub in subsets.items():
        labels = sorted(sub["label"].unique().tolist())
        train, test = sub[sub["split"] == "train"], sub[sub["split"] == "test"]
        base, _ = baseline_f1(train, test, labels)
        log(f"{name}: baseline {base:.3f}")
        cells = []
        for model in models:
            row = train_and_score(model, sub, name, DEFAULT, workdir, records, 600)
            log(f"  {model}: {json.dumps(row, default=str)}")
            cells.append(f"{row['macro_f1']:.3f} ({row['fit_seconds']:.0f})")
        counts = "/".join(str(int((sub["split"] == k).sum())) for k in ("train", "val", "test"))
        lines.append(f"| {name} | {counts} | {base:.3f} | " + " | ".join(cells) + " |")
    return lines


def cost(args: argparse.Namespace) -> int:
    """`--cost`: every model's cost on the bundled sample, beside TF-IDF + LR."""
    from train_cost import render as render_cost
    from train_cost import run_cost

    started = time.perf_counter()
    # The longest first, so that `--jobs` workers finish together; shown the default first.
    runs = ["bigru", "transformer", "finetune", "textcnn", "hybrid", "linear_probe"]
    shown = ["TF-IDF + LR", "hybrid", "linear_probe", "textcnn", "transformer", "bigru"]
    models = sorted(args.models, key=lambda m: runs.index(m) if m in runs else len(runs))
    workdir = Path(args.workdir)
    rows = run_cost(
        models, workdir, args.finetune_steps, args.cold_texts, args.jobs, args.max_minutes, log
    )
    rank = {model: i for i, model in enumerate(shown)}  # then finetune, then the cold embedding
    rows.sort(key=lambda r: (r["run"] == "last", rank.get(r["model"], len(rank))))
    lines = render_cost(rows, args.finetune_steps)
    print("\n".join(lines))
    (Path(args.workdir) / "cost.json").write_text(json.dumps(rows, indent=2, default=str))
    if not args.no_results:
        from results import append_section

        append_section(
            "Train: what each model costs on the bundled sample",
            f".venv/bin/python benchmarks/train.py --cost --finetune-steps {args.finetune_steps} "
            f"--cold-texts {args.cold_texts} --jobs {args.jobs} --max-minutes {args.max_minutes:g}",
            [
                "Each conf/model choice trained as the train stage trains it: the sample's "
                "kept records, the train stage's split, the configured epochs with early "
                "stopping (patience 3), `trainer.threads=1`, one child process per row (its "
                "peak RSS, imports included). *embed cache* warm = a copy of the project's cache "
                "after `make run` (every sample text embedded); cold = the one-off ONNX export "
                "of MiniLM and every sample text embedded into an empty cache, timed on "
                f"{args.cold_texts + 1} texts and extrapolated (a cold train stage costs its "
                "warm row plus this). "
                "*features s* = embedding, hashing or tokenising; *total fit s* = the "
                "train stage's `train_model` (features, fit, MLflow logging), test prediction "
                "not included; *x baseline* = total fit s over the mean of the two TF-IDF + LR "
                "fits (its vectoriser and LR, same rows). The finetune is timed over "
                f"{args.finetune_steps} training batches and one validation pass and "
                "extrapolated (marked ~). A fit stopped by the time cap (`--max-minutes`, "
                "Lightning `max_time`) says so: its s per epoch is measured, its epochs are a "
                "lower bound and the configured run costs up to max epochs x s per epoch. "
                f"{args.jobs} measured at once (`--jobs`), the baseline alone. The machine's "
                "2 cores were shared with five other helpers' jobs while this ran (the load "
                "column): wall seconds are pessimistic, CPU seconds and their ratios less so. "
                f"{(time.perf_counter() - started) / 60:.0f} min in all.",
                "",
                *lines,
            ],
        )
    return 0


def full_test(args: argparse.Namespace) -> int:
    """`--full-test`: hybrid and the probe vs TF-IDF + LR on every t0 template test row."""
    from train_full_test import full_test as measure

    started = time.perf_counter()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # MLflow and Lightning write relative to the working directory
    lines, figures = measure(workdir, args.train_per_label, log)
    print("\n".join(lines))
    (workdir / "full_test.json").write_text(json.dumps(figures, indent=2, default=str))
    if not args.no_results:
        from results import append_section

        info = figures["info"]
        append_section(
            "Train: the default model (hybrid) vs TF-IDF + LR on the full t0 template-holdout "
            "test split",
            ".venv/bin/python benchmarks/train.py --full-test "
            f"--train-per-label {args.train_per_label}",
            [
                f"t0-prompts after the dedup stage, {len(info['held_out'])} templates held "
                f"out for test (seed {SEED}); full split train/val/test = "
                f"{info['full']['train']}/{info['full']['val']}/{info['full']['test']}. "
                "Every row is scored on the whole test split. The networks train on a "
                f"stratified subset (at most {args.train_per_label} train and "
                f"{DEFAULT.val_per_label} val rows per label, "
                f"{info['used']['train']}/{info['used']['val']}) because embedding all "
                "31.5k records takes 40-60 min on these 2 shared cores; TF-IDF + LR is fitted "
                "on the same subset and on all train rows. 2 cores shared with five other "
                "helpers' jobs; embeddings came partly from a warm cache, so fit s is not a "
                f"cost figure (see the cost section). {(time.perf_counter() - started) / 60:.0f}"
                " min in all.",
                "",
                *lines,
            ],
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small samples, 1-2 epochs")
    parser.add_argument(
        "--long", action="store_true", help="1,000 train rows per label, finetune up to 35 min"
    )
    parser.add_argument("--workdir", default="/tmp/bench-train", help="records, runs, checkpoints")
    parser.add_argument("--models", nargs="*", default=MODELS, help=f"default: {MODELS}")
    parser.add_argument("--splits", nargs="*", default=["dataset", "template"])
    parser.add_argument(
        "--no-overhead", action="store_true", help="skip the Lightning overhead run"
    )
    parser.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument(
        "--default", action="store_true", help="the default model vs the probe and TF-IDF"
    )
    parser.add_argument(
        "--full-test", action="store_true", help="hybrid vs TF-IDF on all t0 template test rows"
    )
    parser.add_argument(
        "--train-per-label", type=int, default=800, help="--full-test: networks' train rows"
    )
    parser.add_argument("--cost", action="store_true", help="every model's cost on the sample")
    parser.add_argument(
        "--finetune-steps", type=int, default=20, help="--cost: finetune batches timed"
    )
    parser.add_argument(
        "--cold-texts", type=int, default=128, help="--cost: texts embedded into an empty cache"
    )
    parser.add_argument("--jobs", type=int, default=1, help="--cost: models measured at once")
    parser.add_argument(
        "--max-minutes", type=float, default=59.0, help="--cost: Lightning max_time per fit"
    )
    args = parser.parse_args(argv)
    if args.cost:
        return cost(args)
    if args.full_test:
        return full_test(args)
    if args.default:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        os.chdir(workdir)  # MLflow and Lightning write relative to the working directory
        lines = default_vs_baseline(workdir)
        print("\n".join(lines))
        if not args.no_results:
            from results import append_section

            append_section(
                "Train: the default model (hybrid) vs the linear probe and TF-IDF + LR",
                ".venv/bin/python benchmarks/train.py --default",
                [
                    "Test macro-F1 on the same rows for all three (fit seconds in brackets); "
                    "the sample with the train stage's split, t0 a stratified template-holdout "
                    f"subset (per label {DEFAULT.train_per_label}/{DEFAULT.val_per_label}/"
                    f"{DEFAULT.test_per_label} train/val/test rows at most, seed {SEED}).",
                    "",
                    *lines,
                ],
            )
        return 0
    if not T0.exists():
        print(f"{T0} is absent; nothing to benchmark", file=sys.stderr)
        return 2
    started = time.perf_counter()
    size = "quick" if args.quick else "long" if args.long else "full"
    budget = {"quick": QUICK, "long": LONG, "full": FULL}[size]
    deadline = started + TOTAL_MINUTES[size] * 60 - RESERVE_S
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # MLflow and Lightning write relative to the working directory
    records = records_parquet(workdir)
    frame = labelled_frame(records)
    results: dict[str, Any] = {
        "records": len(frame),
        "budget": {
            "train_per_label": budget.train_per_label,
            "val_per_label": budget.val_per_label,
            "test_per_label": budget.test_per_label,
            "epochs": budget.epochs,
            "minutes": budget.minutes,
        },
        "splits": {},
    }
    labels = sorted(frame["label"].unique().tolist())
    sub_for_overhead = None
    for kind in args.splits:
        (split, sub), info = split_and_subsample(frame, kind, budget, SEED)
        log(f"{kind} split: {info['used']} rows used; held out {info['held_out'][:8]}")
        train, test = sub[sub["split"] == "train"], sub[sub["split"] == "test"]
        f1, seconds = baseline_f1(train, test, labels)
        entry: dict[str, Any] = {"info": info, "baseline": {"macro_f1": f1, "seconds": seconds}}
        log(f"  baseline (subsample) macro-F1 {f1:.3f}")
        if not args.quick:
            f1_all, s_all = baseline_f1(split[split["split"] == "train"], test, labels)
            entry["baseline_all"] = {"macro_f1": f1_all, "seconds": s_all}
            log(f"  baseline (all train rows) macro-F1 {f1_all:.3f} in {s_all:.0f} s")
        entry["models"] = {}
        for model in args.models:
            left = deadline - time.perf_counter()
            if left < 60:
                entry["models"][model] = {"error": "skipped: total time budget spent"}
                continue
            try:
                row = train_and_score(model, sub, kind, budget, workdir, records, left)
            except Exception as exc:  # one broken model must not hide the others' figures
                row = {"error": f"failed: {type(exc).__name__}: {str(exc)[:120]}"}
            entry["models"][model] = row
            log(f"  {model}: {json.dumps(row, default=str)}")
        results["splits"][kind] = entry
        sub_for_overhead = sub
    if not args.no_overhead and sub_for_overhead is not None:
        results["overhead"] = overhead(sub_for_overhead, args.quick)
        log(f"overhead: {json.dumps(results['overhead'])}")
    seconds = time.perf_counter() - started
    text = render(results, args, seconds)
    print(text)
    (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    if not args.no_results:
        with (ROOT / "benchmarks" / "RESULTS.md").open("a", encoding="utf-8") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
