"""The dedup stage's core: validate, redact, normalise, the curation steps (`steps/`, one
plug-in each), choose survivors.

Reading files lives in `pipeline.io.readers`, SQL in `pipeline.store`, the streaming intake
in `intake.py`, and the orchestration (timing, publishing, tracking) in `pipeline.stages.dedup`.
"""
