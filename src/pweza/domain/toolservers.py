"""The ToolServer kind: an MCP server whose tools the `agent` runtime may call.

It is reached over streamable HTTP (a URL, headers whose values may come from environment
variables) or over stdio (a command run next to whoever connects: the agent, and the manager
when it discovers the tools). The spec is one flat object, not a union, so that the CRD schema
stays structural; the validator checks that the settings match the transport, as `Runtime` does.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic.alias_generators import to_camel

from pweza.domain.durations import Duration
from pweza.domain.kinds import register_kind
from pweza.domain.manifests import EnvVar, Manifest, SpecModel

ToolTransport = Literal["http", "stdio"]
HeaderName = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"

# Which settings each transport needs and which it accepts (camelCase, as in the YAML).
_TRANSPORT_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "http": ({"url"}, {"url", "headers"}),
    "stdio": ({"command"}, {"command", "env", "workingDir"}),
}
_COMMON = {"transport", "timeout", "connectTimeout", "refreshInterval"}


class HeaderSource(SpecModel):
    env: str = Field(
        min_length=1,
        pattern=ENV_NAME,
        description="The environment variable (of the agent, and of the manager when it lists the tools) that holds "
        "the value. Use it for secrets: on Kubernetes, give the agents the variable from a Secret.",
    )


class ToolServerHeader(SpecModel):
    """One request header; its value written here or read from an environment variable (never logged)."""

    name: HeaderName = Field(description="The header's name, e.g. Authorization.")
    value: str | None = Field(default=None, description="The header's value (use valueFrom for secrets).")
    value_from: HeaderSource | None = Field(default=None, description="Where the value is read from instead.")

    @model_validator(mode="after")
    def _one_value(self) -> ToolServerHeader:
        if (self.value is None) == (self.value_from is None):
            raise ValueError("give exactly one of value or valueFrom")
        return self


class ToolServerSpec(SpecModel):
    transport: ToolTransport = Field(
        description="How the MCP server is reached: http speaks streamable HTTP to `url`; stdio runs `command` and "
        "speaks over its standard input and output. Each transport needs its own fields and accepts no other's."
    )
    url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        max_length=2048,
        description="http (needed): the MCP endpoint, e.g. http://127.0.0.1:8000/mcp.",
    )
    headers: list[ToolServerHeader] | None = Field(
        default=None, max_length=32, description="http: headers sent with every request."
    )
    command: list[Annotated[str, Field(min_length=1, max_length=4096)]] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="stdio (needed): the program and its arguments, run without a shell next to the agent.",
    )
    env: list[EnvVar] | None = Field(
        default=None,
        max_length=64,
        description="stdio: the command's environment variables. Of the agent's own it gets only HOME, LOGNAME, "
        "PATH, SHELL, TERM and USER (as the MCP SDK starts servers), so the agent's secrets stay with it.",
    )
    working_dir: str | None = Field(
        default=None, max_length=4096, description="stdio: the directory the command runs in."
    )
    timeout: Duration = Field(
        default="60s", description="How long one tool call may take before it fails (a duration)."
    )
    connect_timeout: Duration = Field(
        default="10s",
        description="How long connecting (starting the command, the MCP handshake) may take before it fails.",
    )
    refresh_interval: Duration = Field(
        default="5m",
        description="How often the manager lists the server's tools again for the status (and at once on a change).",
    )

    @model_validator(mode="after")
    def _settings_match_transport(self) -> ToolServerSpec:
        required, allowed = _TRANSPORT_FIELDS[self.transport]
        given = {to_camel(name) for name in self.model_fields_set if getattr(self, name)}
        given -= _COMMON
        missing = sorted(required - given)
        if missing:
            raise ValueError(f"transport {self.transport!r} needs {', '.join(missing)}")
        extra = sorted(given - allowed)
        if extra:
            accepted = ", ".join(sorted(allowed))
            raise ValueError(f"{', '.join(extra)} not allowed for transport {self.transport!r} (allowed: {accepted})")
        return self


class ToolServer(Manifest):
    """An MCP server (streamable HTTP or stdio) whose tools agents may call; its status lists them."""

    kind: Literal["ToolServer"] = "ToolServer"
    spec: ToolServerSpec = Field(description="How the server is reached.")


register_kind(ToolServer, "toolservers", "toolserver", "ts")
