"""Anomaly scores: an autoencoder over the kept records' cached embeddings (docs/anomaly.md)."""
