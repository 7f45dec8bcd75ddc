"""Retrieval evaluation: recall, MRR and nDCG of every search mode on judged queries."""
