"""Fagsystem connectors: one folder per system (client, mapping, simulator) on a shared framework.

- ``connectors.runner``: commits each batch with its cursor, retries, circuit breakers, status
- ``connectors.http``: the one HTTP client (retries, timeouts, auth, paging)
- ``connectors.registry``: system name -> connector and simulator factories
- ``connectors.simulation``: serving simulators on 127.0.0.1, fault injection
The connector contract itself is ``hub.ingest.connector``. See docs/connectors.md.
"""
