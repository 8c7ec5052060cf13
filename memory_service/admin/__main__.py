"""`python -m memory_service.admin`: the same as `attune-memory-admin`."""

from memory_service.admin.app import app

app(prog_name="attune-memory-admin")
