"""The Fasit simulator (JSON queries/commands, bearer token, X-Tenant) over a synthetic municipality."""

from connectors.fasit.simulator.app import FasitCredentials, create_app, simulator

__all__ = ["FasitCredentials", "create_app", "simulator"]
