"""The domain: events, identities, streams and rules. Plain Python, no I/O, no project imports."""
