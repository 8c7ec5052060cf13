"""Unit tests of memory_service and the kit both services share."""
