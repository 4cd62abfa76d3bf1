"""Ingest: source records -> validated canonical events -> the store, in batches."""
