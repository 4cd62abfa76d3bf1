"""The Fasit simulator: JSON queries and commands, bearer token and X-Tenant header."""

from connectors.fasit.simulator.app import FasitCredentials, create_app, simulator

__all__ = ["FasitCredentials", "create_app", "simulator"]
