"""Start-up notes of the training libraries that tell a user nothing, filtered out.

Lightning logs "GPU available: False, used: False", "TPU available ..." and two "💡 Tip"
adverts (litlogger, litmodels) at every fit; on a CPU machine they are noise above the
lines that matter. Only those messages are dropped: Lightning's warnings and its other
notes (DDP's "Initializing distributed ...") still print.
"""

from __future__ import annotations

import logging
import warnings

NOISE = ("GPU available:", "TPU available:", "HPU available:", "💡 Tip:")
LIGHTNING_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
)


class DropNoise(logging.Filter):
    """Drop log records whose message starts with one of NOISE."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(NOISE)


def quiet_libraries() -> None:
    """Install the filter on Lightning's rank-zero loggers (once per process)."""
    # Lightning 2.6 calls a torch API torch 2.13 deprecates, at every batch's collation.
    warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropNoise) for f in logger.filters):
            logger.addFilter(DropNoise())
