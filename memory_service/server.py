"""`python -m memory_service`: serve the memory service until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import grpc

from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from memory_service import metrics
from memory_service.access.audit_buffer import AuditSink
from memory_service.access.redis_audit import RedisStreamAuditLog
from memory_service.access.wiring import access_control, authenticator_from
from memory_service.retention_sweep import RetentionSweep
from memory_service.rpc.servicer import MemoryServicer
from memory_service.search.embeddings import EmbeddingsConfig, EmbeddingsProvider
from memory_service.search.form_compile import compile_lexicon
from memory_service.search.forms import load_forms
from memory_service.security.crypto import DecryptionError, KeyConfigError, Keyring, MissingKeyError
from memory_service.security.identity import MEMORY_ROLE_NAMES, AuthConfigError, Authenticator
from memory_service.semantic import Semantic
from memory_service.servicekit.lifecycle import ManagedServer, RunningService
from memory_service.servicekit.logging import configure_logging
from memory_service.servicekit.private_files import restrict_umask
from memory_service.servicekit.settings import settings_or_exit
from memory_service.servicekit.tracing import configure_tracing
from memory_service.settings import MemorySettings
from memory_service.store.factory import open_store
from memory_service.store.redis.store import RedisStore
from memory_service.write_pipeline import DAY_SECONDS, Retention

SERVICE_NAME = memory_pb2.DESCRIPTOR.services_by_name["MemoryService"].full_name

log = logging.getLogger("attune.memory")


class ConfigurationError(Exception):
    """The settings cannot make a safe service; the message says what to set."""


def authenticator_for(settings: MemorySettings) -> Authenticator:
    """Tokens from the tokens file, or nobody checked when explicitly turned off."""
    try:
        return authenticator_from(settings, "MEMORY_", MEMORY_ROLE_NAMES)
    except AuthConfigError as error:
        raise ConfigurationError(str(error)) from None


def keyring_for(settings: MemorySettings) -> Keyring:
    """The encryption keys of SENSITIVE patterns; empty when none are configured."""
    keys = settings.encryption_keys.get_secret_value() if settings.encryption_keys else None
    try:
        return Keyring.from_settings(
            keys, settings.encryption_key_file, settings.encryption_active_key_id
        )
    except KeyConfigError as error:
        raise ConfigurationError(str(error)) from None


def retention_for(settings: MemorySettings) -> Retention:
    """The retention policy the settings describe."""
    return Retention(
        public_seconds=settings.retention_public_days * DAY_SECONDS,
        internal_seconds=settings.retention_internal_days * DAY_SECONDS,
        sensitive_seconds=settings.retention_sensitive_days * DAY_SECONDS,
    )


async def start(settings: MemorySettings) -> RunningService:
    """Opens the store and starts serving on it; ConfigurationError if unsafe."""
    authenticator = authenticator_for(settings)
    keyring = keyring_for(settings)
    try:
        store, location = await open_store(settings, keyring)
    except (MissingKeyError, DecryptionError) as error:
        raise ConfigurationError(str(error)) from None
    log.info(
        "store open",
        extra={
            "store": settings.store,
            "path": location,
            "encryption_key": keyring.active_key_id or "none",
        },
    )
    sweep = RetentionSweep(store, settings.retention_sweep_seconds)

    semantic, provider = None, None
    if settings.embeddings_url:
        provider = EmbeddingsProvider(
            EmbeddingsConfig(
                base_url=settings.embeddings_url,
                model=settings.embeddings_model,
                api_key=settings.embeddings_api_key,
                timeout_seconds=settings.embeddings_timeout_seconds,
                max_retries=1,
            )
        )
        semantic = Semantic(provider, settings.embeddings_timeout_seconds)

    closers: list[Callable[[], Awaitable[None]]] = []
    audit_sink: AuditSink | None = None
    if isinstance(store, RedisStore):
        # Replicas on one Redis share one audit stream, so ListAuditEvents on
        # any replica shows every replica's records.
        stream = RedisStreamAuditLog(store.options, settings.audit_stream_max_entries)
        closers.append(stream.aclose)
        audit_sink = stream
    access = access_control(settings, authenticator, settings.data_dir, audit_sink)
    # The templates' forms search understands: problems are reported, never fatal.
    forms = load_forms(settings.templates_dir)
    for problem in forms.problems:
        log.warning("template not understood", extra={"problem": str(problem)})
    await asyncio.to_thread(compile_lexicon, forms.catalog, (), ())  # Not on the first search.

    def register(server: grpc.aio.Server) -> None:
        ttl = (settings.context_default_ttl_seconds, settings.context_max_ttl_seconds)
        servicer = MemoryServicer(
            store,
            authenticator=access.authenticator,
            retention=retention_for(settings),
            semantic=semantic,
            context_ttl=ttl,
            audit_log=access.audit_log,
            max_pattern_bytes=settings.max_pattern_bytes,
            denials=access.denials,
            forms=forms.catalog,
            backend=settings.store,
        )
        memory_pb2_grpc.add_MemoryServiceServicer_to_server(servicer, server)

    async def close_provider() -> None:
        if provider is not None:
            await provider.aclose()

    managed = ManagedServer(
        settings,
        SERVICE_NAME,
        register,
        store.ping,
        access.undecodable_hook(SERVICE_NAME),
        metrics.SERVICE,
    )
    unbind_metrics = metrics.bind_state(lambda: managed.ready, keyring.active_key_id is not None)

    async def release_metrics() -> None:
        unbind_metrics()  # The gauges no longer read this server.

    await managed.start()
    sweep.start()
    return RunningService(
        managed,
        sweep.stop,
        store.close,
        close_provider,
        access.close,
        *closers,
        release_metrics,
    )


async def serve(settings: MemorySettings) -> None:
    """Serves until a termination signal, then drains."""
    await (await start(settings)).serve_until_signal()


def main() -> None:
    """Console entry point."""
    restrict_umask()  # Before anything is written: the store and audit are the owner's only.
    settings = settings_or_exit(MemorySettings, "MEMORY_")
    configure_logging("memory", settings.log_level)
    flush_spans = configure_tracing("attune-memory")  # The graceful stop flushes too.
    try:
        asyncio.run(serve(settings))
    except ConfigurationError as error:
        log.critical("cannot start: %s", error)
        raise SystemExit(2) from None
    finally:
        flush_spans()  # The spans of a start that failed, or of a stop that raised.


if __name__ == "__main__":
    main()
