"""The ModelConfig kind: what it refuses (naming the field), and what an agent of a template
that uses it is sent in its welcome (the configs, never a key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pweza.domain.errors import InvalidInput
from pweza.domain.kinds import parse_manifest
from pweza.domain.roles import Role
from pweza.manager.auth import Principal
from pweza.manager.config import Settings
from pweza.manager.service import Manager
from pweza.store.sqlite import SqliteStore
from tests.model_providers import chat_reply, failing_provider, provider

ADMIN = Principal("test", "test", Role.ADMIN)


def model_config(name: str = "main", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "ModelConfig",
        "metadata": {"name": name},
        "spec": {"baseUrl": "https://api.example.com/v1", "model": "gpt-x", **spec},
    }


def agent_template(**runtime: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "AgentTemplate",
        "metadata": {"name": "thinker"},
        "spec": {"runtime": {"kind": "agent", **runtime}},
    }


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        (model_config(fallbacks=["main"]), "spec.fallbacks", "its own fallback"),
        (model_config(fallbacks=["b", "b"]), "spec.fallbacks", "named twice"),
        (model_config(headers={"Authorization": "Bearer sk-1"}), "spec.headers", "use apiKey"),
        (model_config(apiKey={"env": "K", "secretKeyRef": {"name": "s", "key": "k"}}), "spec.apiKey", "exactly one"),
        (model_config(baseUrl="ftp://x"), "spec.baseUrl", "pattern"),
        (model_config(timeout="soon"), "spec.timeout", "not a duration"),
        (model_config(rateLimit={"requestsPerMinute": 0}), "spec.rateLimit.requestsPerMinute", "greater than"),
        (agent_template(), "spec.runtime", "needs modelRef"),
        (agent_template(modelRef="main", outputSchema={"type": 3}), "spec.runtime.outputSchema", "not a JSON Schema"),
        (agent_template(modelRef="main", handler="a:b"), "spec.runtime", "not allowed for runtime kind 'agent'"),
    ],
)
def test_a_wrong_setting_is_refused_naming_its_field(document: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_manifest(document)
    assert caught.value.field == field and words in caught.value.detail


async def test_an_agents_welcome_carries_its_model_and_fallbacks_in_order(manager: Manager) -> None:
    for document in (
        model_config("main", fallbacks=["spare", "gone"], apiKey={"env": "MAIN_KEY"}, timeout="1m30s"),
        model_config("spare"),
        agent_template(modelRef="main", maxTurns=3),
        {"apiVersion": "pweza.ai/v1", "kind": "AgentPool", "metadata": {"name": "thinkers"},
         "spec": {"templateRef": "thinker"}},
    ):  # fmt: skip
        await manager.apply_object(ADMIN, parse_manifest(document))
    _, spec = await manager.agent_pool("default", "thinkers")
    runtime = spec["runtime"]
    assert [m["name"] for m in runtime["models"]] == ["main", "spare"]
    assert runtime["missingModels"] == ["gone"]
    assert runtime["models"][0]["spec"]["apiKey"] == {"env": "MAIN_KEY"}, "where the key is, not the key"
    assert [m["timeoutSeconds"] for m in runtime["models"]] == [90.0, 60.0]


async def test_a_listing_says_whether_each_endpoint_is_reachable_and_what_it_lists(
    manager: Manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UP_KEY", "sk-listing-secret")
    with provider(lambda _n, _b: chat_reply("hi"), models=["m-1", "m-2"]) as up, failing_provider(503) as down:
        await manager.apply_object(
            ADMIN, parse_manifest(model_config("up", baseUrl=up.base_url, apiKey={"env": "UP_KEY"}))
        )
        await manager.apply_object(ADMIN, parse_manifest(model_config("down", baseUrl=down.base_url)))
        listed = {o.name: o.body["status"] for o in await manager.queries.objects("ModelConfig", None, 10, None)}
        again = await manager.queries.object("ModelConfig", "default", "up")
    assert listed["up"]["reachable"] is True and listed["up"]["models"] == ["m-1", "m-2"]
    assert "lastError" not in listed["up"]
    assert listed["down"]["reachable"] is False and "503" in listed["down"]["lastError"]
    assert (
        up.requests[0]["path"] == "/v1/models"
        and up.requests[0]["headers"]["authorization"] == "Bearer sk-listing-secret"
    )
    assert "sk-" not in str(listed)
    assert again.body["status"] == listed["up"] and len(up.requests) == 1, "remembered, not asked again at once"


async def test_with_probes_off_a_listing_asks_no_endpoint(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'pweza.db'}", model_status_probes=False)
    manager = Manager(SqliteStore(tmp_path / "pweza.db"), settings)
    await manager.start()
    try:
        with provider(lambda _n, _b: chat_reply("hi"), models=["m-1"]) as up:
            await manager.apply_object(ADMIN, parse_manifest(model_config("up", baseUrl=up.base_url)))
            [listed] = await manager.queries.objects("ModelConfig", None, 10, None)
    finally:
        await manager.stop()
    assert "status" not in listed.body and up.requests == []


async def test_applying_a_template_or_fallback_before_its_model_config_warns_which_is_missing(manager: Manager) -> None:
    template = await manager.apply_object(ADMIN, parse_manifest(agent_template(modelRef="main")))
    assert template.warnings == [
        "spec.runtime.modelRef: ModelConfig 'main' does not exist yet in namespace 'default'; "
        "its agents cannot serve until it does"
    ]
    main = await manager.apply_object(ADMIN, parse_manifest(model_config("main", fallbacks=["spare"])))
    assert [w.split(":")[0] for w in main.warnings] == ["spec.fallbacks[0]"]
    await manager.apply_object(ADMIN, parse_manifest(model_config("spare")))
    again = await manager.apply_object(ADMIN, parse_manifest(agent_template(modelRef="main", maxTurns=2)))
    assert again.warnings == []
