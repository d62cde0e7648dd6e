"""The one way a test says it needs something that is not there."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """Whether this is a CI run (`CI` set, as CI services and `.ci/run` set it, to anything but 0 or false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def missing(message: str) -> NoReturn:
    """Skip the test, saying what is missing and how to get it; in CI, where nothing may skip
    (make test builds and installs all a test needs), fail it instead."""
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)
