"""The image recipe, proven without a container engine.

deploy/docker/Dockerfile is read, never restated: its build stage's COPY and
RUN lines are replayed in a fresh venv (paths under the image's /opt/attune
and /var/lib/attune moved under tmp_path, nothing else changed), then each
target's ENTRYPOINT runs with the target's ENV plus only what a deployment
must add. What this cannot prove (the build itself, the layers, the base
image, the user switch, a read-only root) is listed in deploy/README.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import grpc
import pytest
from grpc_health.v1 import health_pb2

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.dev.stack import EXECUTOR_SERVICE, MEMORY_SERVICE, ServiceProcess
from executor_service.settings import ExecutorSettings
from memory_service.settings import MemorySettings
from tests.support.dockerfile import Dockerfile, Stage, parse
from tests.support.helpers import run_request

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = DOCKERFILE.with_name("Dockerfile.dockerignore")
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# Where the image keeps its venv and its data; the replay moves both under tmp.
VENV_IN_IMAGE = "/opt/attune"
DATA_IN_IMAGE = "/var/lib/attune"
# The PATH of the official python images, which the image's ENV extends.
BASE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
SERVING = health_pb2.HealthCheckResponse.SERVING
# Replaying the build stage installs ~45 distributions from the machine's
# package index: about 18 s here, so the module may take longer than the default.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@dataclass(frozen=True)
class Target:
    """One image target and the service it runs."""

    stage: str
    prefix: str
    service_name: str
    default_port: int


TARGETS = {
    "memory": Target(
        "memory", "MEMORY_", MEMORY_SERVICE, MemorySettings.model_fields["port"].default
    ),
    "executor": Target(
        "executor", "EXECUTOR_", EXECUTOR_SERVICE, ExecutorSettings.model_fields["port"].default
    ),
}


@pytest.fixture(scope="module")
def recipe() -> Dockerfile:
    return parse(DOCKERFILE)


def build_stage(recipe: Dockerfile) -> Stage:
    """The stage every target copies its venv from."""
    sources = {
        word.removeprefix("--from=")
        for stage in recipe.stages
        for copy in stage.own("COPY")
        for word in copy.split()
        if word.startswith("--from=")
    }
    assert len(sources) == 1, f"expected one build stage, COPY --from names {sources}"
    return recipe.stage(sources.pop())


# --- the recipe, read -----------------------------------------------------------


def test_base_image_is_pinned_and_runs_the_python_tested_here(recipe: Dockerfile) -> None:
    bases = recipe.final_bases()
    assert len(bases) == 1, f"every stage should start from the one base image: {bases}"
    match = re.fullmatch(
        r"python:(3)\.(\d+)\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", next(iter(bases))
    )
    assert match, f"base image not pinned by exact tag and digest: {bases}"
    # The replay below uses this interpreter: it proves the recipe only for the same minor.
    assert (int(match[1]), int(match[2])) == sys.version_info[:2]
    assert PROJECT["requires-python"] == f">={match[1]}.{match[2]}"


@pytest.mark.parametrize("name", TARGETS)
def test_each_target_runs_as_the_service_expects(recipe: Dockerfile, name: str) -> None:
    target, stage = TARGETS[name], recipe.stage(name)
    entrypoint = stage.exec_form("ENTRYPOINT")
    assert entrypoint is not None
    assert len(entrypoint) == 1
    assert PROJECT["scripts"][entrypoint[0]] == f"{name}_service.server:main"
    assert stage.exec_form("CMD") is None
    assert stage.inherited("EXPOSE") == [str(target.default_port)]
    # A numeric, non-root user and group: runAsNonRoot can check a number, not a name.
    user = stage.last("USER")
    assert user is not None
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), user
    uid, gid = user.split(":")
    creating = " ".join(stage.inherited("RUN"))
    assert f"--uid {uid}" in creating
    assert f"--gid {gid}" in creating
    # Its data directory: under the volume, made for that user, as the working directory.
    env = stage.env({"PATH": BASE_PATH})
    assert stage.inherited("VOLUME") == [f'["{DATA_IN_IMAGE}"]']
    assert env[f"{target.prefix}DATA_DIR"].startswith(DATA_IN_IMAGE + "/")
    assert f"install -d -o {uid} -g {gid} -m 0700 {DATA_IN_IMAGE}" in creating
    assert stage.last("WORKDIR") == DATA_IN_IMAGE
    # Reachable from outside the pod; TLS or plaintext stays the deployment's choice.
    assert env[f"{target.prefix}HOST"] == "0.0.0.0"
    assert f"{target.prefix}PLAINTEXT_ALLOWED" not in env
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith(f"{VENV_IN_IMAGE}/bin:")
    # The service handles SIGTERM itself, as PID 1.
    assert stage.last("STOPSIGNAL") == "SIGTERM"


def test_no_init_process_and_oci_labels(recipe: Dockerfile) -> None:
    instructions = [i for stage in recipe.stages for i in stage.instructions]
    for init in ("tini", "dumb-init"):
        assert not any(init in i.arguments for i in instructions), init
    labels = " ".join(recipe.stage("runtime").inherited("LABEL"))
    for key in ("title", "description", "version", "revision", "licenses", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    assert f'org.opencontainers.image.licenses="{PROJECT["license"]}"' in labels


def test_every_dependency_is_installed_from_the_constraints(recipe: Dockerfile) -> None:
    build = build_stage(recipe)
    installs = [run for run in build.own("RUN") if "pip install" in run]
    assert installs
    for run in installs:
        for command in run.split("&&"):
            if "pip install" in command:
                assert "-c constraints.txt" in command, command
    assert any("constraints.txt" in copy.split() for copy in build.own("COPY"))
    # Nothing is installed in the image that runs: it only copies the venv.
    for name in TARGETS:
        runtime_runs = [
            r for s in recipe.stage(name).chain() if s is not build for r in s.own("RUN")
        ]
        assert not any("pip" in run for run in runtime_runs)


def copied_sources(build: Stage) -> list[str]:
    """What the build stage COPYs from the context."""
    sources: list[str] = []
    for copy in build.own("COPY"):
        words = [w for w in copy.split() if not w.startswith("--")]
        sources += words[:-1]
    return sources


def test_the_ignore_file_lets_through_what_the_build_copies(recipe: Dockerfile) -> None:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "the context should start from nothing"
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    assert set(copied_sources(build_stage(recipe))) == allowed


# --- the recipe, replayed -------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    """The build stage replayed under a temporary root."""

    root: Path
    venv: Path
    versions: dict[str, str]  # By normalized distribution name.


def in_tmp(text: str, root: Path) -> str:
    """The image's paths moved under root (the only change the replay makes)."""
    for path in (VENV_IN_IMAGE, DATA_IN_IMAGE):
        text = text.replace(path, f"{root}{path}")
    return text


@pytest.fixture(scope="module")
def installed(recipe: Dockerfile, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The build stage's COPY and RUN lines, run here (the machine's pip index config)."""
    root = tmp_path_factory.mktemp("image")
    build = build_stage(recipe)
    workdir = root / str(build.last("WORKDIR")).lstrip("/")
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")
    for source in copied_sources(build):
        (workdir / source).parent.mkdir(parents=True, exist_ok=True)
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, workdir / source, ignore=ignored)
        else:
            shutil.copy2(REPO / source, workdir / source)
    # `python` is the base image's interpreter: here, the one running the tests.
    shims = root / "shims"
    shims.mkdir()
    (shims / "python").symlink_to(getattr(sys, "_base_executable", sys.executable))
    env = build.env({**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"})
    for run in build.own("RUN"):
        command = in_tmp(run, root)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    venv = root / VENV_IN_IMAGE.lstrip("/")
    listed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    versions = {normalized(d["name"]): d["version"] for d in json.loads(listed)}
    (root / DATA_IN_IMAGE.lstrip("/")).mkdir(parents=True, mode=0o700)
    return Installed(root, venv, versions)


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_venv_holds_only_pinned_distributions(installed: Installed) -> None:
    pins = {
        normalized(name): version
        for name, _, version in (
            line.partition("==") for line in (REPO / "constraints.txt").read_text().splitlines()
        )
        if version
    }
    # The base image's own tools, and the project built from the copied sources.
    own = {"pip", "setuptools", "wheel", normalized(PROJECT["name"])}
    for name, version in installed.versions.items():
        if name not in own:
            assert pins.get(name) == version, f"{name}=={version} is not a pin"
    assert installed.versions[normalized(PROJECT["name"])] == PROJECT["version"]


def container(
    recipe: Dockerfile, installed: Installed, name: str, log: IO[str], **deployment: str
) -> ServiceProcess:
    """A target's entry point with the image's ENV and nothing else but `deployment`.

    `deployment` are the target's settings without their prefix. The port is
    0 (a free one, reported through the port file), where a pod would take
    the exposed one.
    """
    target, stage = TARGETS[name], recipe.stage(name)
    image_env = {
        key: in_tmp(value, installed.root)
        for key, value in stage.env({"PATH": BASE_PATH, "HOME": "/nonexistent"}).items()
    }
    entrypoint = stage.exec_form("ENTRYPOINT") or []
    executable = shutil.which(entrypoint[0], path=image_env["PATH"])
    assert executable == str(installed.venv / "bin" / entrypoint[0])
    return ServiceProcess(
        name,
        target.service_name,
        target.prefix,
        {"PORT": "0", **deployment},
        Path(log.name).parent,
        log=log,
        command=[executable, *entrypoint[1:]],
        environment=image_env,
        cwd=installed.root / str(stage.last("WORKDIR")).lstrip("/"),
    )


@pytest.fixture
def pair(
    recipe: Dockerfile, installed: Installed, tmp_path: Path
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Both targets running, as a development deployment configures them."""
    with (
        (tmp_path / "memory.log").open("w") as memory_log,
        (tmp_path / "executor.log").open("w") as executor_log,
    ):
        # Plaintext and no authentication: the choices only a dev deployment makes.
        dev = {"PLAINTEXT_ALLOWED": "true", "AUTH_DISABLED": "true"}
        memory = container(recipe, installed, "memory", memory_log, **dev)
        executor: ServiceProcess | None = None
        try:
            memory.start(timeout=60)
            executor = container(
                recipe, installed, "executor", executor_log, **dev, MEMORY_ADDRESS=memory.address
            ).start(timeout=60)
            yield memory, executor
        finally:
            if executor is not None:
                executor.kill()
            memory.kill()


def files_under(path: Path) -> set[Path]:
    return set(path.rglob("*"))


def test_both_targets_serve_health_run_a_workflow_and_stop_on_sigterm(
    installed: Installed, pair: tuple[ServiceProcess, ServiceProcess]
) -> None:
    memory, executor = pair
    venv_files = files_under(installed.venv)
    for service in (memory, executor):
        assert service.health("") == SERVING
        assert service.health(service.service_name) == SERVING
    with grpc.insecure_channel(executor.address) as channel:
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        events = list(stub.RunWorkflow(run_request(package_name="demo"), timeout=60))
    assert events[-1].HasField("run_finished")
    run = events[-1].run_finished.run
    # The simulated runner decides success at random; the run must be decided either way.
    assert run.status in {executor_pb2.RUN_STATUS_SUCCEEDED, executor_pb2.RUN_STATUS_FAILED}
    assert any(event.HasField("pattern_stored") for event in events), "memory not reached"
    # The run's files are under the data volume, and nothing was written into the venv.
    assert Path(run.run_dir).is_relative_to(installed.root / DATA_IN_IMAGE.lstrip("/"))
    assert files_under(installed.venv) == venv_files
    assert executor.terminate() == 0
    assert memory.terminate() == 0


def test_without_a_transport_choice_the_image_refuses_to_start(
    recipe: Dockerfile, installed: Installed, tmp_path: Path
) -> None:
    with (tmp_path / "memory.log").open("w") as log:
        memory = container(recipe, installed, "memory", log, AUTH_DISABLED="true")
        with pytest.raises(RuntimeError, match="exited"):
            memory.start(timeout=60)
    assert "MEMORY_PLAINTEXT_ALLOWED=true" in (tmp_path / "memory.log").read_text()
