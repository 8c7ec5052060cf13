"""Helpers every kind of test shares: stacks of real servers, tokens, certificates, Redis."""
