"""The error a runner raises when it cannot be built from the settings."""

from __future__ import annotations


class RunnerConfigError(ValueError):
    """A runner is requested but not configured (key, models, prices or URL).

    Messages name the setting to fix and never carry a secret.
    """
