from __future__ import annotations

import time
from typing import Any

import pytest

from pweza.domain.durations import parse_duration
from pweza.domain.errors import InvalidInput
from pweza.domain.kinds import parse_manifest
from pweza.domain.manifests import AgentPool, AgentTemplate
from pweza.domain.workflows import WorkflowSpec, ancestors_of
from tests.conftest import pool, template


def test_template_defaults_fill_in_unset_fields() -> None:
    parsed = parse_manifest(template())
    assert isinstance(parsed, AgentTemplate)
    assert parsed.metadata.namespace == "default"
    assert parsed.spec.concurrency == 1
    assert parsed.spec.retry.limit == 3
    assert parse_duration(parsed.spec.timeout) == 300


def test_pool_keeps_the_seed_fields() -> None:
    parsed = parse_manifest(
        pool(
            template={"image": "ghcr.io/x/agent:1", "environment": [{"name": "A", "value": "1"}]},
            scaling={"minReplicas": 2, "maxReplicas": 10, "targetUtilization": 60},
        )
    )
    assert isinstance(parsed, AgentPool)
    assert parsed.spec.scaling.max_replicas == 10
    assert parsed.spec.template.environment[0].name == "A"


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        (pool(scaling={"minReplicas": 5, "maxReplicas": 2}), "spec.scaling", "must not exceed"),
        (
            pool(scaling={"minReplicas": 1, "maxReplicas": 101}),
            "spec.scaling.maxReplicas",
            "less than or equal to 100",
        ),
        (pool(scaling={"minReplicas": 0}), "spec.scaling.minReplicas", "greater than or equal to 1"),
        (
            pool(scaling={"targetUtilization": 0}),
            "spec.scaling.targetUtilization",
            "greater than or equal to 1",
        ),
        (template(concurency=3), "spec.concurency", "Extra inputs are not permitted"),
        (template(timeout="soon"), "spec.timeout", "not a duration"),
        ({**template(), "metadata": {"name": "Bad_Name"}}, "metadata.name", "should match pattern"),
        (
            {**template(), "spec": {"runtime": {"kind": "python"}}},
            "spec.runtime",
            "needs handler",
        ),
        (
            {**template(), "spec": {"runtime": {"kind": "shell", "command": ["x"], "url": "http://a"}}},
            "spec.runtime",
            "not allowed",
        ),
        ({**pool(), "spec": {}}, "spec.templateRef", "Field required"),
    ],
)
def test_invalid_manifests_name_the_field(document: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_manifest(document)
    assert caught.value.field == field
    assert words in caught.value.detail
    assert caught.value.detail.startswith(field)


def test_wrong_api_version_and_kind_are_named() -> None:
    with pytest.raises(InvalidInput, match="apiVersion"):
        parse_manifest({**template(), "apiVersion": "v1"})
    with pytest.raises(InvalidInput, match="unknown kind 'Agent'"):
        parse_manifest({**template(), "kind": "Agent"})
    with pytest.raises(InvalidInput, match="must be a mapping"):
        parse_manifest(["not", "a", "mapping"])


@pytest.mark.parametrize(("text", "seconds"), [("250ms", 0.25), ("30s", 30), ("5m", 300), ("1h30m", 5400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "1x", "s", "1s2"])
def test_bad_durations_say_what_is_allowed(text: str) -> None:
    with pytest.raises(ValueError, match="ms, s, m or h"):
        parse_duration(text)


def test_ancestors_are_every_transitive_dependency_and_a_long_chain_is_checked_quickly() -> None:
    diamond = WorkflowSpec.model_validate(
        {
            "steps": [
                {"name": "d", "agent": {"pool": "p"}, "depends": ["b", "c"]},
                {"name": "b", "agent": {"pool": "p"}, "depends": ["a"]},
                {"name": "c", "agent": {"pool": "p"}, "depends": ["a"]},
                {"name": "a", "agent": {"pool": "p"}},
            ]
        }
    )
    assert ancestors_of(diamond) == {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"a", "b", "c"}}
    steps: list[dict[str, Any]] = [{"name": "s0", "agent": {"pool": "p"}}]
    steps += [{"name": f"s{i}", "agent": {"pool": "p"}, "depends": [f"s{i - 1}"]} for i in range(1, 1000)]
    started = time.perf_counter()
    chain = WorkflowSpec.model_validate({"steps": steps})
    assert ancestors_of(chain)["s999"] == {f"s{i}" for i in range(999)}
    # Was ~5 s (the webhook's timeout); generous for a shared machine.
    assert time.perf_counter() - started < 2.5
