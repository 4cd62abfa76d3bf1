"""Glasplade: an event-sourced integration hub over the municipality's fagsystemer."""

__version__ = "0.1.0"
