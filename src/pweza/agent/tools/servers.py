"""A ToolServer's spec as the tools providers use it, read from JSON without pydantic.

The manager validated the ToolServer (`pweza.domain.toolservers`) when it was applied; agents
get its spec in their Welcome and read it here by hand, as `pweza.agent.template` reads the
template. Header values taken from the environment are resolved only when a connection is made
and are kept out of every message and log line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pweza.agent.template import TemplateError

_DURATION_UNITS = (("ms", 0.001), ("h", 3600.0), ("m", 60.0), ("s", 1.0))


@dataclass(frozen=True, slots=True)
class HeaderSetting:
    """A request header: its literal value, or the environment variable holding it."""

    name: str
    value: str | None = None
    env: str | None = None

    def resolve(self, environ: Mapping[str, str]) -> str:
        if self.env is None:
            return self.value or ""
        if self.env not in environ:
            raise ToolServerUnavailable(f"header {self.name}: the environment variable {self.env} is not set")
        return environ[self.env]


@dataclass(frozen=True, slots=True)
class ToolServerConfig:
    name: str
    transport: str
    url: str | None = None
    headers: tuple[HeaderSetting, ...] = ()
    command: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str | None = None
    timeout: float = 60.0
    connect_timeout: float = 10.0
    refresh_interval: float = 300.0
    where: str = field(default="", compare=False)

    @property
    def target(self) -> str:
        """What the server is, for messages: its URL without credentials, or its program (never a
        header or env value)."""
        if self.url:
            parts = urlsplit(self.url)
            host = parts.netloc.rpartition("@")[2]
            return urlunsplit((parts.scheme, host, parts.path, "", ""))
        return self.command[0] if self.command else "?"

    def resolved_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        source = os.environ if environ is None else environ
        return {header.name: header.resolve(source) for header in self.headers}


class ToolServerUnavailable(Exception):
    """The server cannot serve: not reachable, not starting, or not speaking MCP."""


def read_tool_server(name: str, spec: Any) -> ToolServerConfig:
    """The ToolServer `name`'s spec (camelCase JSON); TemplateError says what is wrong with it."""
    if not isinstance(spec, dict):
        raise TemplateError(f"ToolServer {name}: spec is not a mapping")
    transport = spec.get("transport")
    if transport not in ("http", "stdio"):
        raise TemplateError(f"ToolServer {name}: transport {transport!r} is not http or stdio")
    headers = []
    for entry in spec.get("headers") or []:
        source = entry.get("valueFrom") or {}
        headers.append(HeaderSetting(str(entry["name"]), entry.get("value"), source.get("env")))
    config = ToolServerConfig(
        name=name,
        transport=transport,
        url=spec.get("url"),
        headers=tuple(headers),
        command=tuple(str(part) for part in spec.get("command") or ()),
        env=tuple((str(e["name"]), str(e.get("value", ""))) for e in spec.get("env") or ()),
        working_dir=spec.get("workingDir"),
        timeout=seconds(spec.get("timeout", "60s")),
        connect_timeout=seconds(spec.get("connectTimeout", "10s")),
        refresh_interval=seconds(spec.get("refreshInterval", "5m")),
    )
    if (transport == "http") != bool(config.url) or (transport == "stdio") != bool(config.command):
        raise TemplateError(f"ToolServer {name}: transport {transport} lacks its settings")
    return config


def seconds(text: str) -> float:
    """A validated duration ("30s", "1m30s", "250ms") in seconds."""
    total, rest = 0.0, text.strip()
    while rest:
        digits = len(rest) - len(rest.lstrip("0123456789."))
        number, rest = rest[:digits], rest[digits:]
        unit = next((u for u in _DURATION_UNITS if rest.startswith(u[0])), None)
        if not number or unit is None:
            raise TemplateError(f"{text!r} is not a duration")
        total += float(number) * unit[1]
        rest = rest[len(unit[0]) :]
    return total
