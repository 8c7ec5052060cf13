"""Output of the operator commands: plain lines through rich, as `attune` prints.

Markup, highlighting and wrapping are off: the lines are data an operator
pastes (hashes, keys, paths), so they must print exactly as written.
"""

from __future__ import annotations

from rich.console import Console


def _console(stderr: bool) -> Console:
    # Made per call: the console then writes to whatever sys.stdout/stderr is now.
    return Console(stderr=stderr, markup=False, highlight=False, emoji=False, soft_wrap=True)


def say(text: str) -> None:
    """One line (or several) on stdout."""
    _console(stderr=False).print(text)


def complain(text: str) -> None:
    """One line (or several) on stderr: errors and warnings."""
    _console(stderr=True).print(text)
