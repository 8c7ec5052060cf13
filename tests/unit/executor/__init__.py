"""Unit tests of executor_service."""
