"""Who may see a run: a SENSITIVE run is shown to its owner only.

The memory service shows a SENSITIVE pattern to its owner alone (admins
included, nobody else sees it); the executor answers the same way from its
own files (GetRun, ListRuns, searches and recommendations from the run
files), so no answer says more than the memory service would. A run's owner
is the user who started it (`Run.owner`); a run started with authentication
off, or before runs had owners, is ownerless, and its SENSITIVE runs are
seen by no authenticated caller.

With authentication off every caller is the same anonymous admin
(development only), who sees every run.
"""

from __future__ import annotations

from dataclasses import dataclass

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.runs.as_pattern import run_to_pattern
from executor_service.templates.models import Template
from memory_service.security.classify import classify
from memory_service.security.identity import Principal


@dataclass(frozen=True)
class Viewer:
    """Whose SENSITIVE runs a caller sees: their own, or with authentication off everyone's."""

    user_id: str
    sees_everyones: bool = False

    @classmethod
    def of(cls, principal: Principal) -> Viewer:
        """The viewer a caller is."""
        return cls(principal.user_id, sees_everyones=principal == Principal.ANONYMOUS)

    def sees(self, owner: str) -> bool:
        """Whether a SENSITIVE run of `owner` ("" when ownerless) is shown to this viewer."""
        return self.sees_everyones or (bool(owner) and owner == self.user_id)


# The caller when authentication is off: sees every run.
ANONYMOUS_VIEWER = Viewer.of(Principal.ANONYMOUS)


def is_sensitive_run(run: executor_pb2.Run, template: Template | None) -> bool:
    """Whether the run's pattern classifies SENSITIVE, as the memory service
    classifies it (on the pattern as sent: the run as it ran, not as served).

    For runs not in the local index yet (in progress); the index knows the others.
    """
    classification, _ = classify(run_to_pattern(run, template))
    return classification == common_pb2.CLASSIFICATION_SENSITIVE
