"""Access control as a server starts it: who may call, the audit log, the denied-calls budget.

Both servers build the same three things from their AccessSettings (under
their own prefix and role names) and hand them to their servicer and server;
this is that one recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from memory_service.access.audit import FileAuditLog
from memory_service.access.audit_buffer import AuditSink, BufferedAudit
from memory_service.access.denials import DenialLimiter
from memory_service.access.settings import AccessSettings
from memory_service.access.undecodable import audit_undecodable
from memory_service.security.identity import Authenticator, RoleNames, configured_authenticator
from memory_service.servicekit.decoding import UndecodableHook


@dataclass(frozen=True)
class AccessControl:
    """A server's authenticator, buffered audit log and denied-calls budget."""

    authenticator: Authenticator
    audit_log: BufferedAudit
    denials: DenialLimiter

    def undecodable_hook(self, service_name: str) -> UndecodableHook:
        """The hook auditing calls of `service_name` whose request bytes do not decode."""
        return audit_undecodable(service_name, self.authenticator, self.audit_log, self.denials)

    async def close(self) -> None:
        """Flushes what the budget folded, then the audit log."""
        await self.denials.close()
        await self.audit_log.close()


def authenticator_from(
    settings: AccessSettings, prefix: str, role_names: RoleNames
) -> Authenticator:
    """Who may call, as the settings say; AuthConfigError if authentication is
    neither configured nor explicitly off (checked first, before anything opens)."""
    return configured_authenticator(
        settings.tokens_file, settings.auth_disabled, prefix, role_names
    )


def access_control(
    settings: AccessSettings,
    authenticator: Authenticator,
    data_dir: Path,
    audit_sink: AuditSink | None = None,
) -> AccessControl:
    """The access control the settings describe around `authenticator`. The audit
    log is `audit_sink`, else the rotated file `*_AUDIT_LOG` (default: audit.log
    in `data_dir`)."""
    sink = audit_sink or FileAuditLog(
        settings.audit_log or data_dir / "audit.log",
        settings.audit_max_bytes,
        settings.audit_backups,
    )
    audit_log = BufferedAudit(sink)
    denials = DenialLimiter(
        settings.denied_calls_per_second,
        settings.denied_calls_burst,
        settings.denied_audit_window_seconds,
        emit=audit_log.submit,
    )
    return AccessControl(authenticator, audit_log, denials)
