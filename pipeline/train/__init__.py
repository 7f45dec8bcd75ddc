"""The train stage's core: leakage-free split, tokenisation, models, Lightning training.

Import nothing heavy here: the CLI imports `pipeline.train.*` modules lazily.
"""
