"""Curation steps: each a plug-in built by Hydra from a `conf/dedup` section with `_target_`.

`Step` and its inputs and outputs are in `base.py`; `run_steps` runs them in config order.
"""

from pipeline.dedup.steps.base import Decisions, Step, Survivors
from pipeline.dedup.steps.run import StepResult, build_steps, run_steps

__all__ = ["Decisions", "Step", "StepResult", "Survivors", "build_steps", "run_steps"]
