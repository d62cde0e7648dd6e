"""How an agent reads its list of manager replicas and moves between them."""

from __future__ import annotations

import pytest

from pweza.agent.failover import ManagerRotation, parse_manager_addresses


def test_a_single_address_and_a_list_parse_in_order() -> None:
    assert parse_manager_addresses("127.0.0.1:9090") == ("127.0.0.1:9090",)
    assert parse_manager_addresses(" m0.svc:9090, m1.svc:9091 ,[::1]:9092") == (
        "m0.svc:9090",
        "m1.svc:9091",
        "[::1]:9092",
    )


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "no manager address"),
        ("a:1,,b:2", "entry 2 of 'a:1,,b:2' is empty"),
        ("a:1,", "entry 2 of 'a:1,' is empty"),
        ("a:1,b", "'b' is not HOST:PORT"),
        (":9090", "':9090' is not HOST:PORT"),
        ("a:", "'a:' has no valid port"),
        ("a:http", "'a:http' has no valid port"),
        ("a:70000", "'a:70000' has no valid port"),
        ("::1:9090", "IPv6"),
    ],
)
def test_a_malformed_list_names_the_bad_entry(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint.replace("[", r"\[")):
        parse_manager_addresses(text)


def test_rotation_hops_without_backoff_until_every_address_failed() -> None:
    rotation = ManagerRotation(["a:1", "b:2", "c:3"])
    assert rotation.current == "a:1"
    assert [rotation.advance(), rotation.current] == [False, "b:2"]
    assert [rotation.advance(), rotation.current] == [False, "c:3"]
    assert [rotation.advance(), rotation.current] == [True, "a:1"]  # a full round failed: back off
    assert [rotation.advance(), rotation.current] == [False, "b:2"]  # the next round hops again


def test_a_welcome_starts_a_new_round_from_the_working_address() -> None:
    rotation = ManagerRotation(["a:1", "b:2"])
    rotation.advance()
    rotation.connected()  # b welcomed us; when it dies, a is tried at once
    assert [rotation.advance(), rotation.current] == [False, "a:1"]
    assert [rotation.advance(), rotation.current] == [True, "b:2"]


def test_a_single_address_backs_off_after_every_failure() -> None:
    rotation = ManagerRotation(["a:1"])
    assert [rotation.advance(), rotation.advance()] == [True, True]
    assert rotation.current == "a:1"
