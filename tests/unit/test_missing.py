"""`tests.conftest.missing`: a test that needs something absent skips, except in CI, where it fails."""

from __future__ import annotations

import pytest

from tests.conftest import missing


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_in_ci_a_missing_requirement_fails_the_test(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="helm is not built"):
        missing("helm is not built")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_elsewhere_a_missing_requirement_skips_the_test(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="helm is not built"):
        missing("helm is not built")
