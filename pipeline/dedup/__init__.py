"""The dedup stage's pure core: validate, redact, normalise, deduplicate, choose survivors.

Reading files lives in `pipeline.io.readers`, SQL in `pipeline.store.records`, and the
orchestration (timing, publishing, tracking) in `pipeline.stages.dedup`.
"""
