from __future__ import annotations

from pathlib import Path

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
