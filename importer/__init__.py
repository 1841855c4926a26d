"""plausible-import: turn web-server access logs into Plausible Analytics data."""

__version__ = "0.1.0"
