"""The agent's pydantic-free reading of its template agrees with the model the manager validates."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pweza.agent.template import TemplateError, read_template
from pweza.domain.manifests import AgentTemplateSpec
from pweza.domain.safe_yaml import load_all

ROOT = Path(__file__).resolve().parents[2]
SPECS = [
    {"runtime": {"kind": "python", "handler": "m:f", "pythonPath": ["/code", "lib"]}, "concurrency": 3},
    {"runtime": {"kind": "http", "url": "http://127.0.0.1:1/x", "headers": {"a": "b"}}},
    {
        "runtime": {"kind": "shell", "command": ["cat"], "workingDir": "/tmp"},
        "environment": [{"name": "A", "value": "1"}],
    },
    {"runtime": {"kind": "llm", "baseUrl": "http://127.0.0.1:1/v1", "model": "m", "prompt": "p", "temperature": 0}},
]
EXAMPLES = [
    document["spec"]
    for path in sorted(ROOT.glob("examples/*/agents.yaml"))
    for document in load_all(path.read_bytes(), str(path))
    if document and document["kind"] == "AgentTemplate"
]


@pytest.mark.parametrize("spec", SPECS + EXAMPLES)
def test_the_agent_reads_what_the_model_validated(spec: dict[str, object]) -> None:
    model = AgentTemplateSpec.model_validate(spec)
    sent = orjson.dumps(model.model_dump(mode="json", by_alias=True, exclude_none=True))
    view = read_template(sent)
    runtime = model.runtime
    assert view.concurrency == model.concurrency
    assert view.environment == tuple((env.name, env.value) for env in model.environment)
    assert (view.runtime.kind, view.runtime.handler, view.runtime.url) == (runtime.kind, runtime.handler, runtime.url)
    assert view.runtime.python_path == tuple(runtime.python_path or ())
    assert view.runtime.command == tuple(runtime.command or ())
    assert view.runtime.headers == (runtime.headers or {})
    assert (view.runtime.base_url, view.runtime.model, view.runtime.prompt) == (
        runtime.base_url,
        runtime.model,
        runtime.prompt,
    )
    assert (view.runtime.api_key_env, view.runtime.temperature) == (runtime.api_key_env, runtime.temperature)
    assert view.runtime.working_dir == runtime.working_dir


@pytest.mark.parametrize(
    ("sent", "said"),
    [
        (b"{", "not JSON"),
        (b'{"runtime": {"kind": "perl"}}', "runtime.kind"),
        (b'{"runtime": {"kind": "python"}}', "lacks its settings"),
        (b'{"runtime": {"kind": "python", "handler": "m:f", "pythonPath": "."}}', "runtime.pythonPath"),
        (b'{"runtime": {"kind": "python", "handler": "m:f"}, "concurrency": 0}', "concurrency"),
    ],
)
def test_a_template_no_manager_would_send_is_refused_with_what_is_wrong(sent: bytes, said: str) -> None:
    with pytest.raises(TemplateError, match=said):
        read_template(sent)
