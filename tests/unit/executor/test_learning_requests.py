"""Checking GetAnalytics windows and partial form answers."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from google.rpc import error_details_pb2

from attune.executor.v1 import executor_pb2
from executor_service.learning.requests import analytics_window, partial_answers
from executor_service.runs.forms import to_form_value
from executor_service.templates.catalog import load_catalog
from executor_service.templates.models import Template
from memory_service.servicekit.errors import ServiceError


def violations(error: ServiceError) -> dict[str, str]:
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    (detail,) = error.details
    assert isinstance(detail, error_details_pb2.BadRequest)
    return {v.field: v.description for v in detail.field_violations}


def publish_template() -> Template:
    template = load_catalog(None).catalog.get("python_package_publish")
    assert template is not None
    return template


def test_an_empty_request_means_every_run() -> None:
    window = analytics_window(executor_pb2.GetAnalyticsRequest())
    assert (window.template_id, window.start, window.end) == ("", None, None)


def test_a_window_with_its_bounds() -> None:
    request = executor_pb2.GetAnalyticsRequest(template_id="code_review")
    request.start_time.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
    request.end_time.FromDatetime(datetime(2026, 2, 1, tzinfo=UTC))
    window = analytics_window(request)
    assert window.template_id == "code_review"
    assert window.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert window.end == datetime(2026, 2, 1, tzinfo=UTC)


def test_every_problem_of_a_window_is_reported_at_once() -> None:
    request = executor_pb2.GetAnalyticsRequest(template_id="Not An Id")
    request.start_time.nanos = 2_000_000_000
    request.end_time.seconds = 10**12
    with pytest.raises(ServiceError) as raised:
        analytics_window(request)
    assert set(violations(raised.value)) == {"template_id", "start_time", "end_time"}


def test_a_window_must_not_end_before_it_starts() -> None:
    request = executor_pb2.GetAnalyticsRequest()
    request.start_time.FromDatetime(datetime(2026, 2, 1, tzinfo=UTC))
    request.end_time.FromDatetime(datetime(2026, 2, 1, tzinfo=UTC))
    with pytest.raises(ServiceError) as raised:
        analytics_window(request)
    assert "after start_time" in violations(raised.value)["end_time"]


def test_partial_answers_may_leave_required_questions_open() -> None:
    # package_name is required; a form being filled in need not have it yet.
    resolved = partial_answers(publish_template(), {"version_bump": to_form_value("minor")})
    assert resolved["version_bump"] == "minor"
    assert resolved["has_tests"] is True  # Defaults still apply.
    assert "package_name" not in resolved


def test_partial_answers_still_refuse_wrong_answers() -> None:
    with pytest.raises(ServiceError) as raised:
        partial_answers(
            publish_template(),
            {"version_bump": to_form_value("sideways"), "colour": to_form_value("red")},
        )
    found = violations(raised.value)
    assert "is not an option" in found["version_bump"]
    assert "unknown question" in found["colour"]
