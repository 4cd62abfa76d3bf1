"""The DUBU simulator: OData v4 and REST behind a session-cookie login, over a municipality."""

from connectors.dubu.simulator.app import DubuCredentials, create_app, simulator

__all__ = ["DubuCredentials", "create_app", "simulator"]
