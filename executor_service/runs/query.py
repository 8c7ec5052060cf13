"""What ListRuns can filter on, and a run as a filterable record."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from attune.executor.v1 import executor_pb2
from executor_service.convert.enums import RUNNER_NAMES
from memory_service.search.filter import FieldSpec, FieldType, Schema

_STATUSES = tuple(
    value.name.removeprefix("RUN_STATUS_")
    for value in executor_pb2.RunStatus.DESCRIPTOR.values
    if value.number != executor_pb2.RUN_STATUS_UNSPECIFIED
)

RUN_SCHEMA = Schema(
    {
        "run_id": FieldSpec(FieldType.STRING),
        "template_id": FieldSpec(FieldType.STRING),
        "status": FieldSpec(FieldType.ENUM, enum_values=_STATUSES),
        "runner": FieldSpec(FieldType.STRING),
        "create_time": FieldSpec(FieldType.TIMESTAMP),
        "total_cost_usd": FieldSpec(FieldType.NUMBER),
    }
)


def run_record(run: executor_pb2.Run) -> dict[str, Any]:
    """The run's filterable fields as plain values."""
    return {
        "run_id": run.run_id,
        "template_id": run.template_id,
        "status": executor_pb2.RunStatus.Name(run.status).removeprefix("RUN_STATUS_"),
        "runner": RUNNER_NAMES.get(run.runner, "unknown"),
        "create_time": run.create_time.ToDatetime(tzinfo=UTC),
        "total_cost_usd": run.total_cost_usd,
    }
