"""The pweza.ai/v1 CustomResourceDefinitions, generated from the pydantic models.

The models are the single source of truth: this turns their JSON Schema into the
structural OpenAPI v3 schema Kubernetes wants (references inlined, `null` unions turned
into `nullable`, free-form values marked `x-kubernetes-preserve-unknown-fields`) and adds
what a schema cannot say as CEL rules. Every property carries a description for `kubectl explain`:
the field's description, followed by its bounds and default as the schema states them.
`hack/gen-crds.py` writes the files; a test fails when the checked-in files differ from what
this produces.
"""

from __future__ import annotations

import json
from typing import Any

from pweza.domain.manifests import AgentPool, AgentTemplate, Manifest
from pweza.domain.model_configs import ModelConfig
from pweza.domain.toolservers import ToolServer
from pweza.domain.workflows import Workflow

GROUP = "pweza.ai"
_DROP = {"title", "additionalProperties", "$defs", "discriminator"}
_KEEP_SCALAR = (
    "type", "description", "pattern", "minLength", "maxLength",
    "minimum", "maximum", "minItems", "maxItems", "enum", "format",
)  # fmt: skip

# Rules the JSON Schema cannot express, by the path of the object they guard.
_RULES: dict[str, dict[str, list[dict[str, str]]]] = {
    "AgentPool": {
        "spec.scaling": [
            {"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas"},
        ],
        "spec": [
            {
                "rule": "!has(self.replicas) || (self.replicas >= self.scaling.minReplicas"
                " && self.replicas <= self.scaling.maxReplicas)",
                "message": "replicas must be within scaling.minReplicas..maxReplicas",
            }
        ],
    },
    "AgentTemplate": {
        "spec.runtime": [
            {"rule": "self.kind != 'python' || has(self.handler)", "message": "runtime kind python needs handler"},
            {"rule": "self.kind != 'http' || has(self.url)", "message": "runtime kind http needs url"},
            {"rule": "self.kind != 'shell' || has(self.command)", "message": "runtime kind shell needs command"},
            {
                "rule": "self.kind != 'llm' || (has(self.baseUrl) && has(self.model))",
                "message": "runtime kind llm needs baseUrl and model",
            },
            {"rule": "self.kind != 'agent' || has(self.modelRef)", "message": "runtime kind agent needs modelRef"},
        ]
    },
    "ToolServer": {
        "spec": [
            {"rule": "self.transport != 'http' || has(self.url)", "message": "transport http needs url"},
            {"rule": "self.transport != 'stdio' || has(self.command)", "message": "transport stdio needs command"},
        ],
        "spec.headers[]": [
            {"rule": "has(self.value) != has(self.valueFrom)", "message": "give exactly one of value or valueFrom"},
        ],
    },
    "ModelConfig": {
        "spec.apiKey": [
            {"rule": "has(self.env) != has(self.secretKeyRef)", "message": "give exactly one of env or secretKeyRef"},
        ],
        "spec": [
            {
                "rule": "!has(self.fallbacks) || self.fallbacks.all(f, self.fallbacks.exists_one(g, g == f))",
                "message": "a fallback is named twice",
            },
        ],
    },
    "Workflow": {
        "spec.steps[]": [
            {"rule": "has(self.agent) || has(self.approval)", "message": "a step needs an agent, an approval, or both"},
        ]
    },
}

_COLUMNS: dict[str, list[dict[str, str]]] = {
    "AgentTemplate": [
        {"name": "Runtime", "type": "string", "jsonPath": ".spec.runtime.kind"},
        {"name": "Concurrency", "type": "integer", "jsonPath": ".spec.concurrency"},
        {"name": "Pools", "type": "integer", "jsonPath": ".status.pools"},
    ],
    "AgentPool": [
        {"name": "Template", "type": "string", "jsonPath": ".spec.templateRef"},
        {"name": "Desired", "type": "integer", "jsonPath": ".status.replicas"},
        {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
        {"name": "Min", "type": "integer", "jsonPath": ".spec.scaling.minReplicas", "priority": "1"},
        {"name": "Max", "type": "integer", "jsonPath": ".spec.scaling.maxReplicas", "priority": "1"},
        {"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"},
    ],
    "ToolServer": [
        {"name": "Transport", "type": "string", "jsonPath": ".spec.transport"},
        {"name": "Tools", "type": "integer", "jsonPath": ".status.toolCount"},
        {"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"},
    ],
    "ModelConfig": [
        {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
        {"name": "URL", "type": "string", "jsonPath": ".spec.baseUrl"},
        {"name": "Reachable", "type": "boolean", "jsonPath": ".status.reachable"},
    ],
    "Workflow": [
        {"name": "Registered", "type": "integer", "jsonPath": ".status.registeredGeneration"},
        {"name": "Last-Run", "type": "string", "jsonPath": ".status.lastRun.state"},
        {"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"},
    ],
}

_CONDITIONS = {
    "type": "array",
    "description": "The object's state as the operator last saw it, one entry per type (Ready, and for a pool "
    "Progressing and Degraded).",
    "items": {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string", "description": "What the condition is about, such as Ready."},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"], "description": "Whether it holds."},
            "reason": {"type": "string", "description": "Why, in one CamelCase word (e.g. ReplicasNotReady)."},
            "message": {"type": "string", "description": "Why, in words for a person."},
            "lastTransitionTime": {
                "type": "string",
                "format": "date-time",
                "description": "When status last changed.",
            },
            "observedGeneration": {
                "type": "integer",
                "description": "The metadata.generation the condition was set for.",
            },
        },
    },
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}

_STATUS: dict[str, dict[str, Any]] = {
    "AgentTemplate": {"pools": {"type": "integer", "description": "How many AgentPools use this template."}},
    "AgentPool": {
        "replicas": {"type": "integer", "description": "How many agents the pool should have now."},
        "readyReplicas": {"type": "integer", "description": "How many of its agents' pods are ready."},
        "selector": {
            "type": "string",
            "description": "The label selector of the pool's agent pods (for the scale subresource and autoscalers).",
        },
        "template": {
            "type": "string",
            "description": "The AgentTemplate and generation rolled out, as NAME@GENERATION.",
        },
    },
    "ToolServer": {
        "tools": {
            "type": "array",
            "description": "The tools the server lists, as last discovered.",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The tool's name."},
                    "description": {"type": "string", "description": "What the tool does."},
                    "inputSchema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                        "description": "The JSON schema of its arguments.",
                    },
                },
            },
        },
        "toolCount": {"type": "integer", "description": "How many tools the server lists."},
        "lastRefreshed": {
            "type": "number",
            "description": "When the tools were last listed (seconds since the epoch).",
        },
        "lastError": {"type": "string", "description": "Why the last listing failed, if it did."},
    },
    "ModelConfig": {
        "reachable": {"type": "boolean", "description": "Whether the endpoint answered its model list last time."},
        "models": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The models the endpoint listed (GET /models).",
        },
        "lastError": {"type": "string", "description": "Why the endpoint could not be reached, when it could not."},
        "checkedAt": {"type": "string", "format": "date-time", "description": "When the endpoint was last asked."},
    },
    "Workflow": {
        "registeredGeneration": {
            "type": "integer",
            "description": "The metadata.generation the manager has registered: new runs follow it.",
        },
        "lastRun": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "description": "The newest run: its id, state and createdAt.",
        },
        "recentRuns": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "description": "How many of the newest runs (five at most) are in each state.",
        },
    },
}
_ROOT = {
    "apiVersion": {"type": "string", "description": "pweza.ai/v1: the version of the schema this object follows."},
    "kind": {"type": "string", "description": "The kind of object."},
    # The API server refuses anything but a type here: it describes ObjectMeta itself.
    "metadata": {"type": "object"},
}
_STATUS_DESCRIPTION = "What the operator last saw and did; written by it, not by users."
_OBSERVED = {"type": "integer", "description": "The metadata.generation the operator last acted on."}


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    for key in ("anyOf", "oneOf"):
        if key in node:
            options = [o for o in node[key] if o.get("type") != "null"]
            nullable = len(options) < len(node[key])
            rest = {k: v for k, v in node.items() if k != key}
            if len(options) == 1:
                result = _structural({**options[0], **rest}, defs)
            elif {o.get("type") for o in options} == {"string", "integer"}:
                result = _copy_scalars(rest)
                result["x-kubernetes-int-or-string"] = True
            else:
                result = _copy_scalars(rest)
                result["x-kubernetes-preserve-unknown-fields"] = True
            if nullable:
                result["nullable"] = True
            return result
    if "const" in node:
        return {"type": "string", "enum": [node["const"]], **({"default": node["const"]} if "default" in node else {})}
    result = _copy_scalars(node)
    if isinstance(node.get("description"), str):
        result["description"] = node["description"]
    if "exclusiveMinimum" in node:
        result["minimum"], result["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if "exclusiveMaximum" in node:
        result["maximum"], result["exclusiveMaximum"] = node["exclusiveMaximum"], True
    kind = node.get("type")
    if kind is None:
        result["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "object":
        properties = node.get("properties")
        extra = node.get("additionalProperties")
        if properties:
            required = set(node.get("required", []))
            result["properties"] = {}
            for name, child in properties.items():
                converted = _structural(child, defs)
                # An object with a default in the model (not `X | None`) whose fields all have
                # defaults gets them from the API server too, so CEL rules can rely on them.
                optional_object = name not in required and not converted.get("nullable")
                if optional_object and converted.get("properties") and not converted.get("required"):
                    converted.setdefault("default", _filled_default(converted))
                result["properties"][name] = converted
            if required:
                result["required"] = sorted(required)
        elif isinstance(extra, dict):
            result["additionalProperties"] = _structural(extra, defs)
        else:
            result["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        result["items"] = _structural(node.get("items", {}), defs)
    default = node.get("default")
    if default is not None and not isinstance(default, (dict, list)):
        result["default"] = default
    return _described(result)


def _described(schema: dict[str, Any]) -> dict[str, Any]:
    """Its description followed by the bounds and default the schema states, which `kubectl
    explain` does not show by itself, so the text cannot drift from the checks."""
    facts = []
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        facts.append(f"From {_number(low)} to {_number(high)}.")
    elif low is not None:
        facts.append(f"At least {_number(low)}.")
    elif high is not None:
        facts.append(f"At most {_number(high)}.")
    shortest, longest = schema.get("minLength"), schema.get("maxLength")
    if longest is not None:
        facts.append(f"{shortest or 0} to {longest} characters.")
    elif shortest:
        facts.append("Not empty." if shortest == 1 else f"At least {shortest} characters.")
    if "pattern" in schema:
        facts.append(f"Matches {schema['pattern']}.")
    fewest, most = schema.get("minItems"), schema.get("maxItems")
    if fewest and most is not None:
        facts.append(f"{fewest} to {most} items.")
    elif fewest:
        facts.append(f"At least {fewest} item{'s' if fewest > 1 else ''}.")
    elif most is not None:
        facts.append(f"At most {most} items.")
    if "enum" in schema and len(schema["enum"]) > 1:
        facts.append(f"One of {', '.join(str(value) for value in schema['enum'])}.")
    if "default" in schema and not isinstance(schema["default"], dict):
        default = schema["default"]
        facts.append(f"Default: {default if isinstance(default, str) and default else json.dumps(default)}.")
    # Class docstrings (an array item's, a nested object's) are wrapped for the source; kubectl wraps for the terminal.
    text = " ".join(" ".join([schema.get("description", ""), *facts]).split())
    if text:
        schema["description"] = text
    return schema


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _filled_default(schema: dict[str, Any]) -> dict[str, Any]:
    # The API server checks a default against the CEL rules as written, without applying the
    # nested defaults first, so an object's default spells its children's defaults out.
    return {name: child["default"] for name, child in schema.get("properties", {}).items() if "default" in child}


def _copy_scalars(node: dict[str, Any]) -> dict[str, Any]:
    return {key: node[key] for key in _KEEP_SCALAR if key in node and key not in _DROP}


def _at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for part in path.split("."):
        node = node["properties"][part[:-2]]["items"] if part.endswith("[]") else node["properties"][part]
    return node


def openapi_schema(kind: type[Manifest]) -> dict[str, Any]:
    source = kind.model_json_schema(by_alias=True, mode="validation")
    defs = source.get("$defs", {})
    spec = _structural(source["properties"]["spec"], defs)
    name = str(kind.model_fields["kind"].default)
    root: dict[str, Any] = {
        "type": "object",
        "description": source.get("description", name),
        "required": ["spec"],
        "properties": {
            **_ROOT,
            "spec": spec,
            "status": {
                "type": "object",
                "description": _STATUS_DESCRIPTION,
                "properties": {
                    "observedGeneration": _OBSERVED,
                    "conditions": _CONDITIONS,
                    **_STATUS[name],
                },
            },
        },
    }
    for path, rules in _RULES.get(name, {}).items():
        _at(root, path)["x-kubernetes-validations"] = rules
    return root


def crd(kind: type[Manifest], plural: str, short_names: list[str]) -> dict[str, Any]:
    name = str(kind.model_fields["kind"].default)
    version: dict[str, Any] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": openapi_schema(kind)},
        "subresources": {"status": {}},
        "additionalPrinterColumns": [
            *[{**c, "priority": int(c["priority"])} if "priority" in c else c for c in _COLUMNS[name]],
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    }
    if kind is AgentPool:
        version["subresources"]["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "pweza-core"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "singular": name.lower(),
                "kind": name,
                "listKind": f"{name}List",
                "shortNames": short_names,
                "categories": ["pweza"],
            },
            "versions": [version],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, the seed's file names."""
    return {
        "agent-template-crd.yaml": crd(AgentTemplate, "agenttemplates", ["at"]),
        "agent-pool-crd.yaml": crd(AgentPool, "agentpools", ["ap"]),
        "workflow-crd.yaml": crd(Workflow, "workflows", ["wf"]),
        "tool-server-crd.yaml": crd(ToolServer, "toolservers", ["ts"]),
        "model-config-crd.yaml": crd(ModelConfig, "modelconfigs", ["mc"]),
    }
