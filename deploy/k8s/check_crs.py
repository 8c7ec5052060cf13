"""Validates the Prometheus Operator objects in rendered manifests (check.sh runs it).

kubernetes-validate knows only built-in kinds: for a ServiceMonitor or a
PrometheusRule it warns that it has no schema and passes. The Operator's
CRD schemas are not vendored here, so this holds those objects to a subset
of monitoring.coreos.com/v1 written from its API reference: the fields the
manifests use, with their types and the CRD's duration pattern, and any
other field refused (a typo such as `scrapeInterval` would otherwise be
dropped or rejected only by the cluster). The rules' expressions are parsed
by the tests (tests/unit/deploy), not here.

Usage: python check_crs.py RENDERED.yaml... (the deploy tools' venv: jsonschema, PyYAML).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

# monitoring.coreos.com/v1 `Duration`: the CRD's own pattern.
DURATION = {
    "type": "string",
    "pattern": (
        r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
        r"(([0-9]+)ms)?)$"
    ),
}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
    "additionalProperties": False,
}


def _object(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": spec,
        },
    }


SERVICE_MONITOR = _object(
    "ServiceMonitor",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["selector", "endpoints"],
        "properties": {
            "jobLabel": {"type": "string"},
            "targetLabels": {"type": "array", "items": {"type": "string"}},
            "podTargetLabels": {"type": "array", "items": {"type": "string"}},
            "selector": LABEL_SELECTOR,
            "namespaceSelector": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "any": {"type": "boolean"},
                    "matchNames": {"type": "array", "items": {"type": "string"}},
                },
            },
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["port"],
                    "properties": {
                        "port": {"type": "string"},
                        "path": {"type": "string", "pattern": "^/"},
                        "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                        "interval": DURATION,
                        "scrapeTimeout": DURATION,
                        "honorLabels": {"type": "boolean"},
                    },
                },
            },
        },
    },
)

RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["expr"],
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
    "properties": {
        "alert": {"type": "string", "minLength": 1},
        "record": {"type": "string", "minLength": 1},
        "expr": {"type": "string", "minLength": 1},
        "for": DURATION,
        "keep_firing_for": DURATION,
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
}
PROMETHEUS_RULE = _object(
    "PrometheusRule",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["groups"],
        "properties": {
            "groups": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "rules"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "interval": DURATION,
                        "rules": {"type": "array", "minItems": 1, "items": RULE},
                    },
                },
            }
        },
    },
)

SCHEMAS = {"ServiceMonitor": SERVICE_MONITOR, "PrometheusRule": PROMETHEUS_RULE}


def problems(path: Path) -> list[str]:
    """What is wrong with the Operator objects in one rendered file."""
    found = []
    for obj in yaml.safe_load_all(path.read_text()):
        if not obj or not str(obj.get("apiVersion", "")).startswith("monitoring.coreos.com/"):
            continue
        kind, name = obj.get("kind"), obj.get("metadata", {}).get("name")
        schema = SCHEMAS.get(kind)
        if schema is None:
            found.append(f"{path.name}: {kind} {name}: no schema here; add one to check_crs.py")
            continue
        validator = jsonschema.Draft202012Validator(schema)
        for error in validator.iter_errors(obj):
            where = "/".join(str(part) for part in error.absolute_path) or "(object)"
            found.append(f"{path.name}: {kind} {name}: {where}: {error.message}")
        if kind == "PrometheusRule":
            groups = [group["name"] for group in obj["spec"].get("groups", [])]
            if len(groups) != len(set(groups)):
                found.append(f"{path.name}: PrometheusRule {name}: group names repeat: {groups}")
    return found


def main(paths: list[str]) -> int:
    if not paths:
        print("usage: check_crs.py RENDERED.yaml...", file=sys.stderr)
        return 2
    found = [problem for path in paths for problem in problems(Path(path))]
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
