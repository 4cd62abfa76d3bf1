"""DUBU (KOMBIT, children and family cases): OData v4 snapshots diffed against the store."""
