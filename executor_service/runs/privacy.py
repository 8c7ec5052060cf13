"""A run as the executor serves it: personal data scrubbed from its free text.

The run files keep a run as it ran (see "Run files" in the README for why);
what the executor hands out later (GetRun, ListRuns, the learner's history)
is this view, scrubbed with the memory service's own scrubber, so it says no
more than the run's pattern in the memory service does. Free text is the
text answers and the agents' outputs and errors; ids, roles, models,
options, numbers and timestamps are never touched, and the scrubber itself
leaves identifiers inside free text alone (the invariant "Nothing sensitive
leaks", README Architecture).

A text answer holding a secret is shown as `[SECRET]`: only runs written
before answers were scanned up front (`answer_secrets`) can hold one.
"""

from __future__ import annotations

from attune.executor.v1 import executor_pb2
from executor_service.runs.answer_secrets import secret_kinds
from memory_service.security.pii import scrub_text

REDACTED_SECRET = "[SECRET]"  # noqa: S105 (a placeholder, not a credential)


def _scrubbed(text: str, key: str = "") -> str:
    return scrub_text(text, key)[0] if text else text


def served_run(run: executor_pb2.Run) -> executor_pb2.Run:
    """A scrubbed copy of the run; the run itself stays as it is."""
    served = executor_pb2.Run()
    served.CopyFrom(run)
    for question_id, answer in served.answers.items():
        if answer.WhichOneof("kind") != "string_value":
            continue
        if secret_kinds(question_id, answer):
            answer.string_value = REDACTED_SECRET
        else:
            # The question id is the scrubber's hint, as for a pattern's form responses.
            answer.string_value = _scrubbed(answer.string_value, question_id)
    for agent in served.agents:
        agent.output = _scrubbed(agent.output)
        for attempt in agent.attempts:
            attempt.error = _scrubbed(attempt.error)
    return served


def served_event(event: executor_pb2.RunWorkflowResponse) -> executor_pb2.RunWorkflowResponse:
    """A stream event as served to someone other than the run's owner: its
    free text scrubbed like the run's (answers, agents' outputs, attempts'
    errors, and the planned agents' settings, which may repeat an answer)."""
    served = executor_pb2.RunWorkflowResponse()
    served.CopyFrom(event)
    kind = served.WhichOneof("event")
    if kind == "run_started":
        # An agent's settings may repeat a text answer.
        for agent in served.run_started.team:
            for key, value in agent.config.items():
                agent.config[key] = _scrubbed(value, key)
    elif kind == "run_finished":
        served.run_finished.run.CopyFrom(served_run(served.run_finished.run))
    elif kind == "agent_finished":
        scrubbed = served_run(executor_pb2.Run(agents=[served.agent_finished.agent]))
        served.agent_finished.agent.CopyFrom(scrubbed.agents[0])
    elif kind == "attempt_finished":
        served.attempt_finished.attempt.error = _scrubbed(served.attempt_finished.attempt.error)
    return served
