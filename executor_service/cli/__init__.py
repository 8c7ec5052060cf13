"""The `attune` command line: a typer app and its helpers."""
