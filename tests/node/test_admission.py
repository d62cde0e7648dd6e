"""kubectl refuses what `pweza apply` refuses, on the real node: the chart's
ValidatingWebhookConfiguration sends the API server to the operator's pods through their Service,
with the certificate Helm made."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.k8s.test_admission import BAD, GOOD, pweza_apply_message
from tests.node.conftest import AGENTS, Release, eventually

pytestmark = [pytest.mark.node, pytest.mark.timeout(1800)]


def test_kubectl_apply_refuses_each_bad_manifest_with_pweza_applys_message(release: Release, tmp_path: Path) -> None:
    node = release.node
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    # The API server picks a new webhook configuration up within a moment; until then a
    # server-side dry run of a bad manifest would still be admitted.
    probe = tmp_path / "probe.yaml"
    probe.write_text(BAD["cycle"])
    eventually(
        lambda: (
            "validate.pweza.ai"
            in node.kubectl("create", "--dry-run=server", "-n", AGENTS, "-f", str(probe), check=False).stderr
        ),
        120,
        "the webhook to answer",
        interval=2,
    )
    for case, manifest in sorted(BAD.items()):
        path = tmp_path / f"{case}.yaml"
        path.write_text(manifest)
        expected = pweza_apply_message(path)
        refused = node.kubectl("apply", "-n", AGENTS, "-f", str(path), check=False)
        assert refused.returncode != 0, (case, refused.stdout)
        stderr = " ".join(refused.stderr.split())
        assert f'admission webhook "validate.pweza.ai" denied the request: {expected}' in stderr, (case, stderr)
    admitted = node.kubectl("apply", "-n", AGENTS, "-f", str(good), check=False)
    assert admitted.returncode == 0, admitted.stderr
    node.kubectl("delete", "-n", AGENTS, "-f", str(good), check=False)
