"""The append-only event store: a contract, one recorder per backend, shared conformance tests."""
