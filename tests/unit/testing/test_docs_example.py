"""docs/testing.md's example test runs as written (its handler module need not exist: the
scripted agent stands in for it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[3] / "docs" / "testing.md"


async def test_the_documented_workflow_test_passes() -> None:
    (code,) = re.findall(r"^## A workflow test\n\n```python\n(.*?)^```", DOC.read_text(), re.M | re.S)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert len(tests) == 1
    await tests[0]()
