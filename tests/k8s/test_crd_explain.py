"""The installed CRDs document themselves: `kubectl explain` shows each field's description, with
its bounds and default, where it used to say <no description>."""

from __future__ import annotations

import pytest

from pweza.testing.controlplane import ControlPlane

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(600)]


def explained(cp: ControlPlane, path: str) -> str:
    # kubectl wraps the text to the terminal: compare it with its line breaks undone.
    return " ".join(cp.kubectl("explain", path).stdout.split())


def test_explain_agentpool_spec_scaling_describes_each_field(control_plane: ControlPlane) -> None:
    text = explained(control_plane, "agentpool.spec.scaling")
    assert "How many agents the pool runs." in text
    assert "The fewest agents the pool runs; `pweza up` runs this many. At most maxReplicas. From 1 to 100." in text
    assert "Default: 70." in text  # targetUtilization
    assert "<no description>" not in text


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("agentpool", "A group of agents of one AgentTemplate"),
        ("agentpool.spec", "The name of the AgentTemplate"),
        ("agentpool.status", "How many of its agents' pods are ready."),
        ("agenttemplate.spec", "How many tasks one agent works on at once."),
        ("agenttemplate.spec.runtime", "One of python, http, shell, llm, agent."),
        ("agenttemplate.spec.retry", "The wait before the first retry"),
        ("workflow.spec.steps", "A CEL expression: when it is false the step is skipped"),
        ("workflow.spec.inputs", "The JSON type a run's value must have."),
        ("workflow.status", "The metadata.generation the manager has registered"),
        ("workflow.status.conditions", "When status last changed."),
    ],
)
def test_explain_has_no_field_without_a_description(control_plane: ControlPlane, path: str, words: str) -> None:
    text = explained(control_plane, path)
    assert words in text
    assert "<no description>" not in text
