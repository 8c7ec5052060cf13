"""The toolchain guards: generated-code drift, and settings documented."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from pydantic_settings import BaseSettings

from executor_service.settings import ExecutorSettings
from memory_service.settings import MemorySettings

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent


def proto_check(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "-C", str(tree), "proto-check", f"VENV={VENV}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """The files proto-check reads, copied with their times kept."""
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy2(REPO / name, tmp_path / name)
    shutil.copytree(
        REPO / "protos", tmp_path / "protos", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def test_proto_check_passes_on_the_committed_tree(tree_copy: Path) -> None:
    result = proto_check(tree_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "up to date" in result.stdout


def test_editing_a_proto_without_regenerating_fails_proto_check(tree_copy: Path) -> None:
    proto = tree_copy / "protos" / "attune" / "common" / "v1" / "common.proto"
    proto.write_text(proto.read_text().replace("// The cheapest models", "// The cheap models"))
    result = proto_check(tree_copy)
    assert result.returncode != 0
    assert "make proto" in result.stdout + result.stderr


def test_runtime_grpcio_matches_the_generator() -> None:
    from importlib.metadata import version

    assert grpc.__version__ == version("grpcio-tools")


@pytest.mark.parametrize(
    ("settings", "prefix"), [(ExecutorSettings, "EXECUTOR_"), (MemorySettings, "MEMORY_")]
)
def test_every_setting_is_in_the_readme_table(settings: type[BaseSettings], prefix: str) -> None:
    readme = (REPO / "README.md").read_text()
    rows = {
        line.split("|")[1].strip(" `") for line in readme.splitlines() if line.startswith("| `")
    }
    for name, field in settings.model_fields.items():
        variable = prefix + name.upper()
        assert variable in rows, f"{variable} is missing from the README settings table"
        default = field.default if field.default is not None else ""
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{variable}`"))
        # Lists and maps are shown as JSON: what the variable takes, pasteable as is.
        shown = json.dumps(default) if isinstance(default, dict | list | tuple) else default
        assert f"`{shown}`" in row or (default == "" and "(unset)" in row), (
            f"README row for {variable} does not show its default {shown!r}"
        )
