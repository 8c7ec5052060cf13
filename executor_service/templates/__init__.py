"""Workflow templates: their model and the built-in catalog."""
