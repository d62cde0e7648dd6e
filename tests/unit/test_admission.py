"""The admission webhook's answer, without a cluster: which requests are checked, and how refusals read."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aiohttp import web

from pweza.domain.errors import InvalidInput
from pweza.domain.kinds import parse_manifest
from pweza.operator.admission import problem, review_response

WORKFLOW: dict[str, Any] = {
    "apiVersion": "pweza.ai/v1",
    "kind": "Workflow",
    "metadata": {
        "name": "w",
        "namespace": "team-a",
        # What the API server adds is not the user's to fix and must not be refused.
        "uid": "4f1c",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "managedFields": [{"manager": "kubectl"}],
        "generation": 1,
    },
    "spec": {"steps": [{"name": "a", "agent": {"pool": "p"}}, {"name": "b", "agent": {"pool": "p"}, "depends": ["a"]}]},
}


def request(obj: dict[str, Any], operation: str = "CREATE", old: dict[str, Any] | None = None) -> dict[str, Any]:
    kind = {"group": "pweza.ai", "version": "v1", "kind": obj.get("kind")}
    return {"uid": "u", "operation": operation, "kind": kind, "object": obj, "oldObject": old}


def cyclic() -> dict[str, Any]:
    bad = copy.deepcopy(WORKFLOW)
    bad["spec"]["steps"][0]["depends"] = ["b"]
    return bad


def test_a_valid_object_with_server_fields_is_admitted() -> None:
    assert problem(request(WORKFLOW)) is None


def test_the_refusal_is_the_text_parse_manifest_gives() -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_manifest(cyclic())  # what `pweza apply` runs on a file
    assert problem(request(cyclic())) == raised.value.detail == "spec.steps: dependency cycle a -> b -> a"


def test_an_update_is_checked_only_when_it_changes_the_spec() -> None:
    labelled = copy.deepcopy(cyclic())
    labelled["metadata"]["labels"] = {"team": "a"}
    assert problem(request(labelled, "UPDATE", old=cyclic())) is None, "stored before the webhook: still editable"
    assert problem(request(cyclic(), "UPDATE", old=WORKFLOW)) == "spec.steps: dependency cycle a -> b -> a"


def test_deletes_and_other_groups_are_not_checked() -> None:
    assert problem(request(cyclic(), "DELETE")) is None
    other = request(cyclic())
    other["kind"] = {"group": "example.com", "version": "v1", "kind": "Workflow"}
    assert problem(other) is None


def test_the_review_answer_carries_the_uid_and_the_message() -> None:
    answer = review_response(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request(cyclic())}
    )
    assert answer["response"] == {
        "uid": "u",
        "allowed": False,
        "status": {"code": 422, "reason": "Invalid", "message": "spec.steps: dependency cycle a -> b -> a"},
    }
    assert review_response({"request": request(WORKFLOW)})["response"] == {"uid": "u", "allowed": True}


@pytest.mark.parametrize("review", [None, [], {}, {"request": {"operation": "CREATE"}}])
def test_what_is_no_admission_review_is_a_bad_request(review: Any) -> None:
    with pytest.raises(web.HTTPBadRequest):
        review_response(review)
