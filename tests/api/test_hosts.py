"""ekuiper_sdk/hosts.py: the generations of eKuiper and what each reads."""

from __future__ import annotations

import pytest

from ekuiper_sdk import hosts


@pytest.mark.parametrize("version, name", [
    ("1.14.7", "1.x"), ("v1.10.0", "1.x"), ("2.0.0", "2.0-2.1.2"), ("2.0.8", "2.0-2.1.2"),
    ("2.1.2", "2.0-2.1.2"), ("2.1.3", "2.1.3+"), ("2.4.0-27-g0014e7fab", "2.1.3+"),
    ("v2.4.2", "2.1.3+"), ("unknown", "2.1.3+"), ("", "2.1.3+"),
])
def test_a_version_text_names_its_generation(version: str, name: str) -> None:
    assert hosts.generation_of(version).name == name


@pytest.mark.parametrize("config, v1, v2", [
    ({"requireAck": True}, False, True),
    ({"requiredACKs": 1}, True, False),
    ({"requiredACKs": 0}, False, False),
    ({"requiredACKs": True}, False, False),   # a bool is no Go int
    ({"requiredACKs": 1.5}, False, False),    # a float64 is no Go int either
    ({"requireAck": "true"}, False, False),   # 2.x refuses the rule; nothing is read
    ({}, False, False),
])
def test_each_generation_reads_acks_by_its_own_property(config: dict[str, object],
                                                        v1: bool, v2: bool) -> None:
    assert hosts.V1.reads_acks(config) is v1
    assert hosts.V2_EARLY.reads_acks(config) is v2
    assert hosts.V2.reads_acks(config) is v2
    assert hosts.any_host_reads_acks(config) is (v1 or v2)


def test_only_the_newest_generation_skips_a_keepalive_on_the_control_channel() -> None:
    assert [g.skips_keepalives for g in hosts.GENERATIONS] == [False, False, True]
    assert hosts.every_host_skips_keepalives() is False
