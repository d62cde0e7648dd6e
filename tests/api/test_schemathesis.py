"""Schemathesis against a real manager on loopback: requests generated from the OpenAPI document
the manager serves (valid and invalid ones, a bounded number, the same every run) never get a
5xx, and without a token every /api/v1 route answers 401."""

from __future__ import annotations

from collections.abc import Callable

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode

from pweza.testing.platform import Platform

pytestmark = pytest.mark.timeout(300)

# Examples per route and generation mode: about a minute and a half for both passes on two cores.
ADMIN_EXAMPLES = 15
ANONYMOUS_EXAMPLES = 6  # the token check comes first, so what varies matters little


def bounded(examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=examples,
        derandomize=True,  # the same requests every run: a failure here is a failure anywhere
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: its time has no bound
        suppress_health_check=list(HealthCheck),
    )


Check = Callable[[schemathesis.Case], None]


@pytest.fixture(scope="module")
def api_schema(live: Platform) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json", timeout=10)


def describe(case: schemathesis.Case, response: schemathesis.Response) -> str:
    return f"{response.status_code} for {case.as_curl_command()}\n  {response.text[:300]}"


def failures(api_schema: schemathesis.BaseSchema, check: Check, examples: int) -> list[str]:
    """Run `check` on generated cases of every operation in both modes; the first failure of each."""
    found = []
    sent = 0

    def counted(case: schemathesis.Case) -> None:
        nonlocal sent
        sent += 1
        check(case)

    operations = [result.ok() for result in api_schema.get_all_operations()]
    for operation in operations:
        for mode in GenerationMode:
            generated = hypothesis.given(operation.as_strategy(generation_mode=mode))
            run = bounded(examples)(generated(counted))
            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing in this mode fits the operation (no parameters to get wrong)
            except AssertionError as error:
                found.append(f"{operation.label} ({mode.value}): {error}")
    # Some routes have few distinct requests to make, but most must have been tried in full.
    assert sent >= len(operations) * examples, f"only {sent} requests for {len(operations)} routes"
    return found


def test_an_admin_never_gets_a_server_error(live: Platform, api_schema: schemathesis.BaseSchema) -> None:
    def check(case: schemathesis.Case) -> None:
        response = case.call(headers={"Authorization": f"Bearer {live.admin_token}"}, timeout=30)
        assert response.status_code < 500, describe(case, response)

    found = failures(api_schema, check, ADMIN_EXAMPLES)
    assert not found, "\n".join(found)


def test_without_a_token_every_api_route_is_401(api_schema: schemathesis.BaseSchema) -> None:
    def check(case: schemathesis.Case) -> None:
        response = case.call(timeout=30)
        if case.path.startswith("/api/"):
            assert response.status_code == 401, describe(case, response)
        else:
            assert response.status_code < 500, describe(case, response)

    found = failures(api_schema, check, ANONYMOUS_EXAMPLES)
    assert not found, "\n".join(found)
