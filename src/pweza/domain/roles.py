"""Who may do what: the role of a token decides every route it may call."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"
    AGENT = "agent"


class Permission(enum.StrEnum):
    READ = "read"  # templates, pools, tasks, agents, runs
    WRITE = "write"  # apply/delete objects, submit/cancel tasks, drain agents, run workflows
    ADMIN = "admin"  # tokens and the audit log
    AGENT_CHANNEL = "agent_channel"  # connect as an agent over gRPC


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset({Permission.READ, Permission.WRITE, Permission.ADMIN}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.WRITE}),
    Role.VIEWER: frozenset({Permission.READ}),
    # Agents only speak the agent channel: a stolen agent token cannot read or change state.
    Role.AGENT: frozenset({Permission.AGENT_CHANNEL}),
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in GRANTS[role]
