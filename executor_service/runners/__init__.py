"""Runners execute one agent attempt at one tier."""
