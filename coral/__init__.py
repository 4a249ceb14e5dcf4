"""Coral: version control for neural-network weights."""

__version__ = "0.1.0"
