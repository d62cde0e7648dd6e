from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pweza.domain.crds import all_crds

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("folder", ["deploy/crds", "charts/pweza-core/crds"])
@pytest.mark.parametrize("name", sorted(all_crds()))
def test_checked_in_crds_match_the_models(folder: str, name: str) -> None:
    checked_in = yaml.safe_load((ROOT / folder / name).read_text())
    assert checked_in == all_crds()[name], f"{folder}/{name} is stale: run `make crds`"


def test_the_chart_ships_exactly_the_generated_crds() -> None:
    chart = sorted(path.name for path in (ROOT / "charts" / "pweza-core" / "crds").iterdir())
    assert chart == sorted(all_crds()), "charts/pweza-core/crds/ holds other files than `make crds` writes"


def test_agent_pool_crd_keeps_the_seed_fields_and_bounds() -> None:
    crd = all_crds()["agent-pool-crd.yaml"]
    assert crd["spec"]["names"]["shortNames"] == ["ap"]
    version = crd["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    template = spec["template"]["properties"]
    assert set(template) >= {"image", "resources", "environment"}
    assert template["environment"]["type"] == "array"
    scaling = spec["scaling"]["properties"]
    assert scaling["minReplicas"]["minimum"] == 1
    assert scaling["maxReplicas"]["maximum"] == 100
    assert (scaling["targetUtilization"]["minimum"], scaling["targetUtilization"]["maximum"]) == (1, 100)
    assert spec["scaling"]["x-kubernetes-validations"][0]["rule"] == "self.minReplicas <= self.maxReplicas"
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"replicas", "readyReplicas", "conditions", "observedGeneration", "selector"} <= set(status)


def _properties(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property under `node`, through objects, array items and map values, by its path."""
    for name, child in node.get("properties", {}).items():
        yield f"{path}.{name}", child
        yield from _properties(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _properties(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _properties(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("folder", ["deploy/crds", "charts/pweza-core/crds"])
@pytest.mark.parametrize("name", sorted(all_crds()))
def test_every_property_of_the_checked_in_crds_has_a_description(folder: str, name: str) -> None:
    crd = yaml.safe_load((ROOT / folder / name).read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    found = dict(_properties(schema, crd["spec"]["names"]["kind"]))
    assert len(found) > 20
    assert {"spec", "status"} <= {path.split(".")[1] for path in found}
    # The API server describes metadata (ObjectMeta) itself and refuses a CRD that says more than its type.
    assert found.pop(f"{crd['spec']['names']['kind']}.metadata") == {"type": "object"}
    missing = sorted(path for path, child in found.items() if not str(child.get("description", "")).strip())
    assert missing == [], f"{folder}/{name}: properties without a description (`kubectl explain` says <no description>)"
    assert schema["description"].strip()


def test_descriptions_state_the_bounds_and_defaults_the_schema_checks() -> None:
    schema = all_crds()["agent-pool-crd.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    scaling = schema["properties"]["spec"]["properties"]["scaling"]
    min_replicas = scaling["properties"]["minReplicas"]["description"]
    assert min_replicas.startswith("The fewest agents the pool runs")
    assert "From 1 to 100. Default: 1." in min_replicas
    assert "Default: 70." in scaling["properties"]["targetUtilization"]["description"]
    template = all_crds()["agent-template-crd.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    runtime = template["properties"]["spec"]["properties"]["runtime"]["properties"]
    assert "One of python, http, shell, llm, agent." in runtime["kind"]["description"]
    assert "Default: OPENAI_API_KEY." in runtime["apiKeyEnv"]["description"]
    assert "\n" not in runtime["kind"]["description"], "line breaks are joined; kubectl wraps the text"
