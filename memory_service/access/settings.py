"""Settings of who may call a server, and of its audit log: the same for both services.

Each service reads them under its own prefix (MEMORY_, EXECUTOR_), so the
two can be given different tokens files, each naming its own roles.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings


class AccessSettings(BaseSettings):
    """Authentication, the denied-calls budget and the audit log."""

    auth_disabled: bool = Field(
        default=False,
        description="Turn authentication off: every caller is an admin of every namespace. "
        "Local development only (`make run`, `make serve`); logged loudly at start. The "
        "service refuses to start unless this or the tokens file is set.",
    )
    tokens_file: Path | None = Field(
        default=None,
        description="The tokens file (YAML or JSON, e.g. a mounted Kubernetes secret): SHA-256 "
        "of each bearer token with its user id, role and namespaces. See "
        "`python -m memory_service.security.identity --help`.",
    )
    audit_log: Path | None = Field(
        default=None,
        description="The audit log file (JSON lines, rotated); unset: audit.log in the data "
        "directory. The memory service on redis writes to one Redis stream instead.",
    )
    audit_max_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="Size at which the audit log rotates."
    )
    audit_backups: int = Field(
        default=5, ge=1, description="How many rotated audit log files are kept."
    )
    denied_calls_per_second: float = Field(
        default=1.0,
        gt=0,
        description="Calls answered UNAUTHENTICATED or PERMISSION_DENIED are budgeted per "
        "peer address and principal: refilled at this rate; past the budget such calls answer "
        "RESOURCE_EXHAUSTED and are audited folded. Allowed calls are never limited.",
    )
    denied_calls_burst: int = Field(
        default=60,
        ge=1,
        description="How many unauthenticated or denied calls a peer (per principal) may make "
        "at once before the budget applies.",
    )
    denied_audit_window_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Calls refused by the denied-calls budget are audited as one record per "
        "peer, principal and action per window, with the number of calls it stands for.",
    )
