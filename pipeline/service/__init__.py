"""The logic behind the search service: keys, feedback, the query log, usage and erasure.

It knows nothing of HTTP: the API (pipeline/api) and the CLI (pipeline/commands/keys.py,
feedback.py, stats.py, erase.py) both call it, and its SQL is in pipeline/store/.
"""
