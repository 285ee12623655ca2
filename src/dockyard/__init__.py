"""Dockyard: a trusted private container registry."""

__version__ = "0.1.0"
