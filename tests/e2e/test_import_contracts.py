"""The boundary between the services is a check: `lint-imports` keeps the
contracts of pyproject.toml on this tree, and breaks on a deliberate violation
of each kind (run on a copy, so the tree itself is never touched)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports over the packages under `root`, with root's pyproject.toml."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The packages and the contracts, copied."""
    for package in ("executor_service", "memory_service"):
        shutil.copytree(
            REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract(copy: Path) -> None:
    done = lint_imports(copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "violation", "contract"),
    [
        # The memory service reaching into the executor.
        (
            "memory_service/patterns.py",
            "import executor_service.settings",
            "nothing of the executor",
        ),
        # The executor reaching a memory-only part (its store).
        (
            "executor_service/runs/forms.py",
            "import memory_service.store.embedded",
            "only the memory service's shared parts",
        ),
        # The service kit depending on the rest of the memory service.
        ("memory_service/servicekit/paging.py", "import memory_service.store.base", "service kit"),
        # The search engine depending on the store.
        ("memory_service/search/query.py", "import memory_service.rpc.gate", "search engine"),
        # The CLI importing the server.
        ("executor_service/cli/render.py", "import executor_service.rpc.servicer", "The CLI"),
    ],
)
def test_a_deliberate_violation_breaks_its_contract(
    copy: Path, module: str, violation: str, contract: str
) -> None:
    path = copy / module
    path.write_text(path.read_text() + f"\n{violation}  # noqa\n")
    done = lint_imports(copy)
    assert done.returncode != 0
    broken = [line for line in done.stdout.splitlines() if " BROKEN" in line]
    assert any(contract in line for line in broken), done.stdout
