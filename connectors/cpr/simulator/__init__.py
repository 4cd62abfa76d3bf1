"""The CPR simulator: a SOAP person-lookup server over HTTP on 127.0.0.1."""

from connectors.cpr.simulator.app import CprRegister, create_app, simulator

__all__ = ["CprRegister", "create_app", "simulator"]
