"""A small Dockerfile reader: stages, their instructions, what a target inherits.

Enough of the Dockerfile syntax for deploy/docker/Dockerfile: line
continuations, comments, global ARGs in FROM, `ENV k=v ...`, JSON-form
ENTRYPOINT/CMD, and stages built FROM an earlier stage. Anything else it
meets is kept as text, never guessed at.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword (upper case) and its arguments as written."""

    keyword: str
    arguments: str


@dataclass
class Stage:
    """One FROM and the instructions up to the next."""

    base: str
    name: str | None
    parent: Stage | None
    instructions: list[Instruction] = field(default_factory=list)

    def own(self, keyword: str) -> list[str]:
        """The arguments of this stage's own instructions with this keyword."""
        return [i.arguments for i in self.instructions if i.keyword == keyword]

    def chain(self) -> list[Stage]:
        """This stage and the stages it is built from, the oldest first."""
        stages = [self]
        while stages[0].parent is not None:
            stages.insert(0, stages[0].parent)
        return stages

    def inherited(self, keyword: str) -> list[str]:
        """Arguments of every instruction with this keyword, the base stages' first."""
        return [arguments for stage in self.chain() for arguments in stage.own(keyword)]

    def last(self, keyword: str) -> str | None:
        """The instruction that wins (USER, STOPSIGNAL, WORKDIR...): the last one."""
        values = self.inherited(keyword)
        return values[-1] if values else None

    def exec_form(self, keyword: str) -> list[str] | None:
        """ENTRYPOINT or CMD in exec (JSON) form; None if unset; ValueError if shell form."""
        value = self.last(keyword)
        if value is None:
            return None
        parsed = json.loads(value)
        if not isinstance(parsed, list) or not all(isinstance(p, str) for p in parsed):
            raise ValueError(f"{keyword} is not in exec form: {value}")
        return parsed

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """The environment a container of this stage gets, on top of the base image's."""
        env = dict(base)
        for arguments in self.inherited("ENV"):
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                env[key] = expand(value, env)
        return env


@dataclass
class Dockerfile:
    """The parsed file: global ARG defaults and the stages in order."""

    args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        """The stage called `name`."""
        return next(s for s in self.stages if s.name == name)

    def final_bases(self) -> set[str]:
        """The images stages are built FROM that are not earlier stages."""
        names = {s.name for s in self.stages}
        return {s.base for s in self.stages if s.base not in names}


def expand(text: str, variables: dict[str, str]) -> str:
    """`${NAME}` and `$NAME` replaced by their values (unknown ones by nothing)."""
    return _VARIABLE.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), text)


def logical_lines(text: str) -> list[str]:
    """The lines as Docker reads them: comments dropped, continuations joined."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Comment lines vanish, even inside a continuation.
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending:
        lines.append(pending.rstrip())
    return lines


def parse(path: Path) -> Dockerfile:
    """Reads a Dockerfile into its stages."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(path.read_text()):
        keyword, _, arguments = line.partition(" ")
        keyword, arguments = keyword.upper(), arguments.strip()
        if keyword == "FROM":
            words = expand(arguments, args).split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            parent = next((s for s in stages if s.name == words[0]), None)
            stages.append(Stage(base=words[0], name=name, parent=parent))
        elif keyword == "ARG" and not stages:
            key, _, value = arguments.partition("=")
            args[key] = value
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, arguments))
    return Dockerfile(args, stages)
