"""ToolServer manifests and a template's tools block: what is refused names its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pweza.cli.files import load_documents
from pweza.domain.errors import InvalidInput
from pweza.domain.kinds import parse_manifest
from pweza.domain.toolservers import ToolServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llm-research"


def server(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "pweza.ai/v1", "kind": "ToolServer", "metadata": {"name": "notes"}, "spec": spec}


def template(tools: Any) -> dict[str, Any]:
    spec = {"runtime": {"kind": "python", "handler": "a:b"}, "tools": tools}
    return {"apiVersion": "pweza.ai/v1", "kind": "AgentTemplate", "metadata": {"name": "t"}, "spec": spec}


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        (server(transport="http"), "spec", "transport 'http' needs url"),
        (server(transport="stdio", command=[]), "spec.command", "at least 1 item"),
        (server(transport="stdio", command=["x"], url="http://a/mcp"), "spec", "url not allowed for transport 'stdio'"),
        (server(transport="http", url="ftp://a"), "spec.url", "should match pattern"),
        (server(transport="sse", url="http://a"), "spec.transport", "'http' or 'stdio'"),
        (server(transport="http", url="http://a", timeout="soon"), "spec.timeout", "not a duration"),
        (
            server(transport="http", url="http://a", headers=[{"name": "X-Key"}]),
            "spec.headers[0]",
            "exactly one of value or valueFrom",
        ),
        (
            server(transport="http", url="http://a", headers=[{"name": "X", "valueFrom": {"secret": "s"}}]),
            "spec.headers[0].valueFrom.env",
            "Field required",
        ),
        (template({"servers": [{"toolServer": "Bad_Name"}]}), "spec.tools.servers[0].toolServer", "pattern"),
        (
            template({"servers": [{"toolServer": "a"}, {"toolServer": "a"}]}),
            "spec.tools.servers[1].toolServer",
            "'a' is listed twice",
        ),
        (
            template({"servers": [{"toolServer": "a", "allow": ["x"], "requireApproval": ["y"]}]}),
            "spec.tools.servers[0].requireApproval",
            "y not in allow",
        ),
        (
            template({"agents": [{"pool": "writers"}, {"pool": "editors", "name": "writers"}]}),
            "spec.tools.agents[1]",
            "tool name 'writers' is used twice",
        ),
        (template({"agents": [{"pool": "w", "inputSchema": "a string"}]}), "spec.tools.agents[0].inputSchema", "dict"),
    ],
)
def test_invalid_tool_manifests_name_the_field(document: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_manifest(document)
    assert caught.value.field == field, caught.value.detail
    assert words in caught.value.detail
    assert caught.value.detail.startswith(field)


def test_the_examples_tool_servers_load_with_their_working_dir_made_absolute() -> None:
    documents = dict((doc["metadata"]["name"], doc) for _, doc in load_documents(EXAMPLE / "toolservers.yaml"))
    assert documents["notes"]["spec"]["workingDir"] == str(EXAMPLE)
    assert (Path(documents["notes"]["spec"]["workingDir"]) / documents["notes"]["spec"]["command"][1]).is_file()
    http = ToolServer.model_validate(documents["notes-http"])
    assert http.spec.headers is not None and http.spec.headers[0].value_from is not None
    assert http.spec.headers[0].value_from.env == "NOTES_BEARER"
