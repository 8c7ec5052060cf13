"""`python -m memory_service`: serve the memory service until SIGTERM."""

from __future__ import annotations

import asyncio
import logging

import grpc

from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from memory_service.audit_buffer import BufferedAudit
from memory_service.search.embeddings import EmbeddingsConfig, EmbeddingsProvider
from memory_service.security.audit import FileAuditLog
from memory_service.semantic import Semantic
from memory_service.servicekit.lifecycle import ManagedServer, RunningService
from memory_service.servicekit.logging import configure_logging
from memory_service.servicer import MemoryServicer
from memory_service.settings import MemorySettings
from memory_service.store.factory import open_store

SERVICE_NAME = memory_pb2.DESCRIPTOR.services_by_name["MemoryService"].full_name

log = logging.getLogger("attune.memory")


async def start(settings: MemorySettings) -> RunningService:
    """Opens the store and starts serving on it."""
    store, location = await open_store(settings)
    log.info("store open", extra={"store": settings.store, "path": location})

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

    audit_log = BufferedAudit(
        FileAuditLog(
            settings.audit_log or settings.data_dir / "audit.log",
            settings.audit_max_bytes,
            settings.audit_backups,
        )
    )

    def register(server: grpc.aio.Server) -> None:
        ttl = (settings.context_default_ttl_seconds, settings.context_max_ttl_seconds)
        servicer = MemoryServicer(store, semantic, ttl, audit_log)
        memory_pb2_grpc.add_MemoryServiceServicer_to_server(servicer, server)

    async def close_provider() -> None:
        if provider is not None:
            await provider.aclose()

    managed = ManagedServer(settings, SERVICE_NAME, register, store.ping)
    await managed.start()
    return RunningService(managed, store.close, close_provider, audit_log.close)


async def serve(settings: MemorySettings) -> None:
    """Serves until a termination signal, then drains."""
    await (await start(settings)).serve_until_signal()


def main() -> None:
    """Console entry point."""
    settings = MemorySettings()
    configure_logging("memory", settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
