"""Whether rendered NetworkPolicies admit a peer to a pod's port, by the
NetworkPolicy API's rules (ingress only): a pod selected by no policy of
type Ingress admits everyone; otherwise the union of the rules of the
policies that select it. ipBlock peers are never matched here (pods only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tests.support.manifests import Obj


def selects(selector: Mapping[str, object] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector against a set of labels ({} selects everything)."""
    if selector is None:
        return False
    match_labels = selector.get("matchLabels") or {}
    assert isinstance(match_labels, dict)
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    expressions = selector.get("matchExpressions") or []
    assert isinstance(expressions, list)
    for expression in expressions:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


@dataclass(frozen=True)
class Peer:
    """A pod that would connect: its labels, its namespace and that namespace's labels."""

    labels: Mapping[str, str]
    namespace: str

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace}


def _peer_matches(rule_peer: Obj, peer: Peer, policy_namespace: str) -> bool:
    pods, spaces = rule_peer.get("podSelector"), rule_peer.get("namespaceSelector")
    if pods is None and spaces is None:
        return False  # An ipBlock.
    if spaces is None and peer.namespace != policy_namespace:
        return False
    if spaces is not None and not selects(spaces, peer.namespace_labels):
        return False
    return pods is None or selects(pods, peer.labels)


def _port_matches(ports: list[Obj] | None, number: int) -> bool:
    if not ports:
        return True
    return any(
        port.get("protocol", "TCP") == "TCP"
        and (port.get("port") is None or port.get("port") == number)
        for port in ports
    )


def admits(
    objects: Iterable[Obj], pod_labels: Mapping[str, str], namespace: str, peer: Peer, port: int
) -> bool:
    """Whether `peer` may open a TCP connection to `port` of a pod with these labels."""
    policies = [
        obj
        for obj in objects
        if obj["kind"] == "NetworkPolicy"
        and obj["metadata"].get("namespace", "default") == namespace
        and "Ingress" in obj["spec"].get("policyTypes", ["Ingress"])
        and selects(obj["spec"].get("podSelector", {}), pod_labels)
    ]
    if not policies:
        return True
    return any(
        (not rule.get("from") or any(_peer_matches(p, peer, namespace) for p in rule["from"]))
        and _port_matches(rule.get("ports"), port)
        for policy in policies
        for rule in policy["spec"].get("ingress", [])
    )
