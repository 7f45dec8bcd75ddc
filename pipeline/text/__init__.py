"""Text handling shared by dedup and the keyword index (no heavy imports: search loads it)."""
