"""The image's Dockerfile, checked statically (there is no container engine on the test machines)."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import render

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [argument for instruction, argument in self.instructions if instruction == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs (with defaults) and the build stages, with continuation lines joined."""
    lines = re.sub(r"\\\n\s*", " ", text).splitlines()
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, argument = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", argument.strip(), re.IGNORECASE)
            assert match, line
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], match.group(1))
            stages.append(Stage(base, match.group(2)))
        elif keyword == "ARG" and not stages:
            name, _, default = argument.partition("=")
            args[name] = default
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, argument.strip()))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())[1]


def test_multi_stage_build_into_a_distroless_runtime(stages: list[Stage]) -> None:
    assert len(stages) == 2
    build, runtime = stages
    assert build.name == "build"
    assert runtime.base.startswith("gcr.io/distroless/python3-debian12")
    # The build stage's interpreter is the runtime's: Debian 12's python3.11 at /usr/bin/python3.11.
    assert build.base == "debian:12-slim"
    assert any("/usr/bin/python3.11 -m venv /venv" in run for run in build.all("RUN"))
    # The runtime gets the built venv and the examples' handler modules, nothing else of the tree.
    assert runtime.all("COPY") == ["--from=build /venv /venv", "examples/*/*.py /opt/pweza/examples/"]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"


def test_the_build_stage_also_builds_offline_from_a_wheelhouse(stages: list[Stage]) -> None:
    """hack/build-image.sh builds this file with no network: local bases and wheels/ in the context."""
    build = stages[0]
    assert 'PIP_INSTALL_OPTIONS=""' in build.all("ARG"), "empty by default: docker build . installs from PyPI"
    pip_installs = [run for run in build.all("RUN") if "/venv/bin/pip install" in run]
    assert pip_installs and all("/venv/bin/pip install ${PIP_INSTALL_OPTIONS} " in run for run in pip_installs)
    assert "wheels /wheels" in build.all("COPY")
    # apt-get (which needs the network) only runs on a base without Python.
    (apt,) = [run for run in build.all("RUN") if "apt-get install" in run]
    assert apt.startswith("if ! /usr/bin/python3.11 -c 'import ensurepip, venv'")
    assert (ROOT / "wheels" / "README.md").is_file(), "the slot exists for a plain docker build ."
    script = (ROOT / "hack" / "build-image.sh").read_text()
    assert '"PIP_INSTALL_OPTIONS=--no-index --find-links /wheels"' in script
    assert '--file "${ROOT}/Dockerfile"' in script, "the script builds this Dockerfile, not a copy of it"


def test_runtime_runs_as_uid_1000_without_a_shell(stages: list[Stage]) -> None:
    runtime = stages[-1]
    assert runtime.all("USER")[-1] == "1000:1000"
    assert not runtime.all("RUN"), "the runtime image has no shell to RUN anything with"
    (entrypoint,) = runtime.all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["/venv/bin/pweza"], "exec form: no shell starts the process"
    assert json.loads(runtime.all("CMD")[-1]) == ["--help"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["pweza"] == "pweza.cli.main:app"


def test_the_image_serves_the_ports_the_chart_uses(stages: list[Stage]) -> None:
    exposed = {int(port) for line in stages[-1].all("EXPOSE") for port in line.split()}
    values = yaml.safe_load((ROOT / "charts" / "pweza-core" / "values.yaml").read_text())
    assert set(values["manager"]["ports"].values()) | set(values["operator"]["ports"].values()) == exposed


def test_no_secrets_go_into_the_image(stages: list[Stage]) -> None:
    text = DOCKERFILE.read_text()
    for stage in stages:
        for keyword in ("ARG", "ENV"):
            for argument in stage.all(keyword):
                names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", argument) or [argument.split()[0]]
                for name in names:
                    assert not re.search(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|API_KEY", name, re.I), name
        for copy in stage.all("COPY") + stage.all("ADD"):
            assert not re.search(r"\.env|\.pem|\.key|kubeconfig|\.db\b", copy), copy
    assert "COPY . " not in text and "ADD " not in text
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in ignored if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", ".dockerignore starts by leaving everything out, then lets the package in"
    assert {"!pyproject.toml", "!README.md", "!src/", "!wheels/"} <= set(patterns)


@pytest.mark.chart
def test_the_chart_runs_the_image_as_the_dockerfile_expects() -> None:
    rendered = render("values-production.yaml")
    for deployment in rendered.of("Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert "command" not in container, "the image's ENTRYPOINT (pweza) is kept"
        assert container["args"][0] in ("manager", "operator")
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 1000
