"""`python -m pipeline.sample [--out data/raw] [--seed 0] [--records 3000] [--truth PATH]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.sample import write_sample, write_truth


def main(argv: list[str] | None = None) -> int:
    """Generate the bundled sample and its ground truth."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.sample",
        description="Write the deterministic bundled sample (several formats, planted "
        "duplicates, PII and malformed rows) and its ground truth.",
    )
    parser.add_argument("--out", type=Path, default=Path("data/raw"), help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--records", type=int, default=3000, help="valid records (default 3000)")
    parser.add_argument(
        "--truth",
        type=Path,
        default=Path("tests/data/sample_truth.json"),
        help="where to write the ground truth (default tests/data/sample_truth.json)",
    )
    args = parser.parse_args(argv)
    truth = write_sample(args.out, seed=args.seed, n_records=args.records)
    write_truth(args.truth, truth)
    c = truth["counts"]
    print(
        f"wrote {c['input_rows']} rows to {args.out} ({c['valid']} valid, {c['rejected']} "
        f"malformed, {c['exact_duplicates']} exact and {c['near_duplicates']} near duplicates); "
        f"truth in {args.truth}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
