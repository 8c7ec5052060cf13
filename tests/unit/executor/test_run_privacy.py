"""The run as served: PII scrubbed from free text only, ids and numbers untouched."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.runs.forms import to_form_value
from executor_service.runs.privacy import served_run

RUN_ID = "20260117-052959-01kf2c3r8t4x5y6z7a8b9c0d1e"


def a_run(text: str, output: str = "", error: str = "") -> executor_pb2.Run:
    run = executor_pb2.Run(
        run_id=RUN_ID,
        template_id="python_package_publish",
        answers={
            "package_name": to_form_value(text),
            "quality_checks": to_form_value(["mypy", "ruff"]),
            "test_coverage_required": to_form_value(80.0),
        },
        agents=[
            executor_pb2.AgentResult(
                role="test_runner",
                output=output,
                attempts=[executor_pb2.Attempt(number=1, model="gpt-5-mini", error=error)],
            )
        ],
        total_cost_usd=0.125,
    )
    run.create_time.FromSeconds(1_768_627_799)
    return run


def test_free_text_is_scrubbed_and_the_rest_kept() -> None:
    run = a_run(
        "mail alice@example.com",
        output="reached bob@example.org at 8.8.8.8",
        error="SSN 123-45-6789 in fixture",
    )
    served = served_run(run)
    assert served.answers["package_name"].string_value == "mail [EMAIL]"
    assert served.agents[0].output == "reached [EMAIL] at [IP_ADDRESS]"
    assert served.agents[0].attempts[0].error == "SSN [SSN] in fixture"
    for field in ("run_id", "template_id", "total_cost_usd", "create_time"):
        assert getattr(served, field) == getattr(run, field)
    assert served.answers["quality_checks"] == run.answers["quality_checks"]
    assert served.agents[0].attempts[0].model == "gpt-5-mini"
    # The run itself is left as it ran.
    assert run.answers["package_name"].string_value == "mail alice@example.com"


@given(st.text(max_size=200), st.text(max_size=200))
def test_serving_is_idempotent_and_touches_only_free_text(text: str, output: str) -> None:
    run = a_run(text, output)
    once = served_run(run)
    assert served_run(once) == once
    once.answers["package_name"].CopyFrom(common_pb2.FormValue())
    once.agents[0].output = ""
    run.answers["package_name"].CopyFrom(common_pb2.FormValue())
    run.agents[0].output = ""
    assert once == run
