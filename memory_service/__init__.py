"""The Attune memory service: a safe, searchable store of execution patterns."""

__version__ = "0.1.0"
