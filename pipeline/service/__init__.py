"""The logic behind the search service: keys, feedback, the query log, usage and erasure.

The HTTP layer (pipeline/serve) and the CLI (pipeline/commands/serve.py) both call it.
"""
