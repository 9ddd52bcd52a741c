"""Mobius: the MOBIUS Games pipeline's operations system (verified backups and migrations)."""

__version__ = "0.1.0"
