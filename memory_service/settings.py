"""Memory service settings, from MEMORY_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from memory_service.servicekit.settings import ServerSettings


class MemorySettings(ServerSettings):
    """Everything the memory service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="MEMORY_", extra="ignore")

    port: int = Field(default=50052, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    data_dir: Path = Field(
        default=Path(".attune-data/memory"),
        description="Directory of the embedded store (patterns.sqlite3).",
    )
    store: Literal["embedded"] = Field(
        default="embedded",
        description="Storage backend. `embedded` is a SQLite file in the data directory.",
    )
