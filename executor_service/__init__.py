"""The Attune executor service: runs workflows and keeps their records."""

__version__ = "0.1.0"
