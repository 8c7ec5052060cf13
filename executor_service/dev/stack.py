"""Both services as child processes: `make serve`, `make run` and e2e tests.

`python -m executor_service.dev.stack` serves the memory service and the
executor on the embedded store in the foreground until Ctrl-C or SIGTERM,
then stops both gracefully.

The memory service refuses to start unless authentication is configured or
explicitly turned off. These are development stacks, so they turn it off
(MEMORY_AUTH_DISABLED=true) unless the caller configures it: MEMORY_TOKENS_FILE
or MEMORY_AUTH_DISABLED in the environment or the settings given. With a
tokens file, the executor needs EXECUTOR_MEMORY_TOKEN (or _FILE) as well.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from memory_service.security.crypto import generate_key
from memory_service.servicekit.private_files import FILE_MODE, private_dir, restrict_umask
from memory_service.servicekit.tls import ClientTls

EXECUTOR_SERVICE = "attune.executor.v1.ExecutorService"
MEMORY_SERVICE = "attune.memory.v1.MemoryService"


class ServiceProcess:
    """One service running as `python -m <module>`, configured by environment.

    `command`, `environment` and `cwd` replace the defaults (`python -m
    <module>`, this process's environment, its directory): a test runs an
    image's entry point with exactly the image's environment.
    """

    def __init__(
        self,
        module: str,
        service_name: str,
        prefix: str,
        settings: Mapping[str, str],
        state_dir: Path,
        log: IO[str] | None = None,
        tls: ClientTls | None = None,
        *,
        command: Sequence[str] | None = None,
        environment: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.module = module
        self.command = list(command or [sys.executable, "-m", module])
        self.cwd = cwd
        # How this process's own checks connect, when the service serves TLS.
        self.tls = tls
        self.service_name = service_name
        self.port_file = state_dir / f"{module}.port"
        # Written (before the port file) only when METRICS_PORT is set.
        self.metrics_port_file = state_dir / f"{module}.metrics-port"
        self.prefix = prefix
        base = os.environ if environment is None else environment
        self._env = {**base, **{prefix + key: value for key, value in settings.items()}}
        self._env[prefix + "PORT_FILE"] = str(self.port_file)
        self._env[prefix + "METRICS_PORT_FILE"] = str(self.metrics_port_file)
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.metrics_port = 0  # The bound metrics port, when METRICS_PORT is set.

    def setting(self, key: str) -> str | None:
        """The value the process gets for a setting (without its prefix), if any."""
        return self._env.get(self.prefix + key)

    @property
    def address(self) -> str:
        """host:port of the running service."""
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Where the running service serves its metrics (METRICS_PORT set)."""
        if not self.metrics_port:
            raise RuntimeError(f"{self.module} serves no metrics: set METRICS_PORT")
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        """Starts the process and returns once its readiness check is SERVING."""
        self.port_file.unlink(missing_ok=True)
        self.metrics_port_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            self.command, env=self._env, cwd=self.cwd, stderr=self._log or None
        )
        deadline = time.monotonic() + timeout
        # The server writes its port file only once it is bound and serving.
        while not self.port_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.module} exited with code {self.process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.module} did not start within {timeout} s")
            time.sleep(0.02)
        self.port = int(self.port_file.read_text())
        if self.metrics_port_file.exists():
            self.metrics_port = int(self.metrics_port_file.read_text())
        self.wait_serving(max(1.0, deadline - time.monotonic()))
        return self

    def restart(self, timeout: float = 30.0) -> ServiceProcess:
        """Starts the stopped service again on the same port and data: clients reconnect."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self.module} is still running")
        if self.port:
            self._env[self.prefix + "PORT"] = str(self.port)
        if self.metrics_port:  # Scrapers find it where it was.
            self._env[self.prefix + "METRICS_PORT"] = str(self.metrics_port)
        return self.start(timeout)

    def channel(self) -> grpc.Channel:
        """A channel to the service: over TLS when `tls` is set."""
        if self.tls is None:
            return grpc.insecure_channel(self.address)
        return grpc.secure_channel(self.address, self.tls.credentials(), self.tls.options())

    def health(self, service: str, timeout: float = 5.0) -> int:
        """The health status of `service` ("" is liveness)."""
        with self.channel() as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)  # Its type stubs list no methods.
            response = stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout, wait_for_ready=True
            )
            return int(response.status)

    def wait_serving(self, timeout: float) -> None:
        """Blocks on the health Watch stream until readiness is SERVING."""
        with self.channel() as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)
            watch = stub.Watch(
                health_pb2.HealthCheckRequest(service=self.service_name),
                timeout=timeout,
                wait_for_ready=True,
            )
            for update in watch:
                if update.status == health_pb2.HealthCheckResponse.SERVING:
                    watch.cancel()
                    return

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then waits for the exit code; SIGKILL if it overstays."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        """SIGKILL, for cleanup after a failure."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


_AUTH_SETTINGS = ("TOKENS_FILE", "AUTH_DISABLED")
_KEY_SETTINGS = ("ENCRYPTION_KEYS", "ENCRYPTION_KEY_FILE")
DEV_KEY_FILE = "dev-encryption.key"


def _configured(
    prefix: str,
    keys: tuple[str, ...],
    settings: Mapping[str, str],
    environment: Mapping[str, str] | None,
) -> bool:
    """Whether the settings, or the environment the process will run with (a
    replacement one, else this process's), set any of the keys."""
    inherited = os.environ if environment is None else environment
    return any(key in settings or f"{prefix}{key}" in inherited for key in keys)


def development_key_file(data_dir: Path) -> Path:
    """A key file for SENSITIVE patterns of a development stack, made once and kept.

    Kept beside the stack's data (mode 0600), so the data stays readable
    across restarts; a deployment configures its own key instead.
    """
    path = data_dir / DEV_KEY_FILE
    if not path.exists():
        private_dir(data_dir)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(descriptor, "w") as key_file:
            key_file.write(f"dev:{generate_key()}\n")
    return path


def memory_process(
    data_dir: Path,
    *,
    port: int = 0,
    log: IO[str] | None = None,
    settings: Mapping[str, str] | None = None,
    auth_disabled: bool = True,
    environment: Mapping[str, str] | None = None,
    **extra: str,
) -> ServiceProcess:
    """A memory service under data_dir (embedded store unless settings say otherwise).

    `settings` and keyword arguments are MEMORY_* variables without the prefix;
    `environment` replaces this process's environment (OTEL_* variables, say).
    `auth_disabled` turns authentication off unless the settings or the
    environment already say how to authenticate; False leaves that to them.
    Without a configured encryption key, a development key kept in data_dir
    is used, so SENSITIVE patterns can be stored (see development_key_file).
    """
    settings = {
        "PORT": str(port),
        "DATA_DIR": str(data_dir / "memory"),
        **(settings or {}),
        **extra,
    }
    if auth_disabled and not _configured("MEMORY_", _AUTH_SETTINGS, settings, environment):
        settings["AUTH_DISABLED"] = "true"
    if not _configured("MEMORY_", _KEY_SETTINGS, settings, environment):
        settings["ENCRYPTION_KEY_FILE"] = str(development_key_file(data_dir))
    return ServiceProcess(
        "memory_service",
        MEMORY_SERVICE,
        "MEMORY_",
        settings,
        data_dir,
        log,
        environment=environment,
    )


def auth_note(*services: ServiceProcess) -> str:
    """How the services authenticate, for a development stack's banner."""
    notes = []
    for service in services:
        name = service.prefix.removesuffix("_").lower()
        if (service.setting("AUTH_DISABLED") or "").lower() in {"1", "true", "yes", "on"}:
            notes.append(f"{name} authentication off, for local development")
        else:
            notes.append(f"{name} authentication on, by {service.prefix}TOKENS_FILE")
        if (key_file := service.setting("ENCRYPTION_KEY_FILE") or "").endswith(DEV_KEY_FILE):
            notes.append(f"SENSITIVE patterns sealed with the development key {key_file}")
    return "; ".join(notes)


def executor_process(
    data_dir: Path,
    memory_address: str,
    *,
    port: int = 0,
    log: IO[str] | None = None,
    settings: Mapping[str, str] | None = None,
    auth_disabled: bool = True,
    environment: Mapping[str, str] | None = None,
    **extra: str,
) -> ServiceProcess:
    """An executor under data_dir that stores patterns at memory_address.

    `settings` and keyword arguments are EXECUTOR_* variables without the
    prefix; `environment` replaces this process's environment. `auth_disabled`
    turns its callers' authentication off unless the settings or the
    environment already say how to authenticate.
    """
    settings = {
        "PORT": str(port),
        "DATA_DIR": str(data_dir / "executor"),
        "MEMORY_ADDRESS": memory_address,
        **(settings or {}),
        **extra,
    }
    if auth_disabled and not _configured("EXECUTOR_", _AUTH_SETTINGS, settings, environment):
        settings["AUTH_DISABLED"] = "true"
    return ServiceProcess(
        "executor_service",
        EXECUTOR_SERVICE,
        "EXECUTOR_",
        settings,
        data_dir,
        log,
        environment=environment,
    )


def main() -> int:
    """Serves both services until Ctrl-C or SIGTERM; 0 if both stopped cleanly."""
    restrict_umask()  # The children inherit it; they also set it themselves.
    data_dir = private_dir(Path(os.environ.get("ATTUNE_DATA_DIR", ".attune-data")).resolve())
    memory_port = int(os.environ.get("MEMORY_PORT", "50052"))
    executor_port = int(os.environ.get("EXECUTOR_PORT", "50051"))
    memory = memory_process(data_dir, port=memory_port)
    executor: ServiceProcess | None = None
    # Handlers go in before any child starts, so a signal during start-up
    # still stops both; children get default handlers back at exec.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        memory.start()
        if stop.is_set():
            return 0
        executor = executor_process(data_dir, memory.address, port=executor_port)
        executor.start()
        print(
            f"serving: executor {executor.address}, memory {memory.address} "
            f"(data in {data_dir}; {auth_note(memory, executor)}); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            for service in (executor, memory):
                if service.process is not None and service.process.poll() is not None:
                    print(f"{service.module} exited unexpectedly", file=sys.stderr)
                    return 1
        codes = [executor.terminate(), memory.terminate()]  # Executor first: it calls memory.
        print(f"stopped (exit codes {codes})", file=sys.stderr)
        return 0 if codes == [0, 0] else 1
    finally:
        if executor is not None:
            executor.kill()
        memory.kill()


if __name__ == "__main__":
    sys.exit(main())
