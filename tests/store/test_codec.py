"""The row codec is derived from the domain's dataclasses and `schema`'s tables."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import Column, MetaData, String, Table

from pweza.domain.records import StoredObject, TokenRecord
from pweza.domain.roles import Role
from pweza.domain.runs import Run, RunState, StepApproval, StepError, StepRun, StepState
from pweza.domain.tasks import Attempt, Task, TaskError, TaskState
from pweza.store import codec


def test_a_record_with_a_field_its_table_lacks_is_refused() -> None:
    @dataclass
    class Widget:
        id: str
        colour: str

    table = Table("widgets", MetaData(), Column("id", String, primary_key=True))
    with pytest.raises(TypeError, match="colour"):
        codec.RowCodec(Widget, table)


@pytest.mark.parametrize(
    ("row_codec", "record"),
    [
        (
            codec.TASKS,
            Task("t", "ns", "p", {"x": [1]}, state=TaskState.FAILED, error=TaskError("E", "m"), labels={"run": "r"}),
        ),
        (codec.TASKS, Task("t", "ns", "p", None)),
        (codec.ATTEMPTS, Attempt("t", 1, "agent", 1.0, TaskState.SUCCEEDED, 2.0, TaskError("E", "m", False))),
        (codec.OBJECTS, StoredObject("AgentPool", "ns", "p", 2, {"spec": {}}, 1.0, 2.0)),
        (codec.TOKENS, TokenRecord("id", "ci", Role.AGENT, "ab" * 32, 1.0, pool="ns/p", expires_at=9.0)),
        (codec.RUNS, Run("r", 1, "ns", "wf", 1, {"steps": []}, {}, RunState.FAILED, error="plain text")),
        (
            codec.STEPS,
            StepRun(
                "r",
                "a",
                StepState.FAILED,
                output=[1],
                error=StepError("E", "m", retryable=False),
                approval=StepApproval("ok?", 1.0, 5.0).decided(False, "ann", "no", 2.0),
            ),
        ),
        (codec.STEPS, StepRun("r", "a", error=StepError("Rejected", "no"), approval=StepApproval("ok?", 1.0))),
    ],
)
def test_every_field_survives_a_round_trip(row_codec: codec.RowCodec[object], record: object) -> None:
    assert row_codec.record(row_codec.row(record)) == record


def test_a_steps_error_and_approval_are_stored_as_the_mappings_they_always_were() -> None:
    asked = StepApproval("ok?", 1.0, None)
    row = codec.STEPS.row(StepRun("r", "a", error=StepError("ExpressionError", "when: bad"), approval=asked))
    assert codec.loads(row["error"]) == {"type": "ExpressionError", "message": "when: bad"}
    assert codec.loads(row["approval"]) == {"message": "ok?", "requestedAt": 1.0, "deadline": None}
    decided = asked.decided(True, "ann", "fine", 2.0)
    row = codec.STEPS.row(StepRun("r", "a", error=StepError("HandlerError", "boom", True), approval=decided))
    assert codec.loads(row["error"]) == {"type": "HandlerError", "message": "boom", "retryable": True}
    assert codec.loads(row["approval"]) == {
        "message": "ok?",
        "requestedAt": 1.0,
        "deadline": None,
        "decision": "approved",
        "by": "ann",
        "comment": "fine",
        "at": 2.0,
    }


def test_none_is_stored_as_null_where_the_column_allows_it_and_as_json_where_not() -> None:
    row = codec.TASKS.row(Task("t", "ns", "p", None))
    assert (row["input"], row["output"], row["error"], row["retry"]) == ("null", None, None, None)
