"""The outbound policy: which addresses a provider call may reach (issue 5, point 4)."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given, settings
from hypothesis import strategies as st

from server.outbound import OutboundPolicy, PolicyRefused, PolicyResolver, numeric_host

# Every class of address the default policy refuses, with the words its refusal must use.
REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.1.1", "link-local"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.255", "CGNAT"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("192.0.2.1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("100::1", "discard"),
    ("::7f00:1", "IPv4-compatible"),
    ("4000::1", "outside global unicast"),
    # IPv4 carried in IPv6 is judged by the IPv4.
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("64:ff9b::7f00:1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "cloud metadata"),
    ("2002:7f00:1::", "loopback"),
    ("2002:a9fe:a9fe::1", "cloud metadata"),
    ("64:ff9b:1::1", "NAT64 local use"),
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "100.128.0.1",  # just above CGNAT
    "100.63.255.255",  # just below CGNAT
    "172.32.0.1",  # just above 172.16/12
    "192.169.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001::1",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_default_policy_refuses_every_non_public_class(address: str, reason: str) -> None:
    with pytest.raises(PolicyRefused) as info:
        OutboundPolicy().check_address(address)
    assert reason in info.value.reason
    assert "outbound policy" in str(info.value)
    assert info.value.address == str(ipaddress.ip_address(address.split("%")[0]))


@pytest.mark.parametrize("address", PUBLIC)
def test_default_policy_allows_public_unicast(address: str) -> None:
    OutboundPolicy().check_address(address)


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_operator_allowing_the_address_allows_it(address: str, reason: str) -> None:
    bare = address.split("%")[0]
    OutboundPolicy.from_strings(allow=[bare]).check_address(address)


@pytest.mark.parametrize(
    ("address", "allow"),
    [
        ("127.0.0.1", "127.0.0.0/8"),
        ("10.20.30.40", "10.0.0.0/8"),
        ("169.254.169.254", "169.254.0.0/16"),
        ("100.64.0.1", "100.64.0.0/10"),
        ("fc00::1", "fc00::/7"),
        ("::1", "[::1]"),
        # An allowed IPv4 network covers the same address carried in IPv6.
        ("::ffff:127.0.0.1", "127.0.0.0/8"),
        ("64:ff9b::a00:1", "10.0.0.0/8"),
        ("2002:c0a8:101::", "192.168.0.0/16"),
    ],
)
def test_operator_allowing_a_network_allows_addresses_in_it(address: str, allow: str) -> None:
    OutboundPolicy.from_strings(allow=[allow]).check_address(address)


def test_allowing_one_network_does_not_open_the_others() -> None:
    policy = OutboundPolicy.from_strings(allow=["10.0.0.0/8"])
    with pytest.raises(PolicyRefused):
        policy.check_address("192.168.0.1")
    with pytest.raises(PolicyRefused):
        policy.check_address("::1")


def test_deny_wins_over_allow() -> None:
    policy = OutboundPolicy.from_strings(allow=["10.0.0.0/8"], deny=["10.0.0.5"])
    policy.check_address("10.0.0.6")
    with pytest.raises(PolicyRefused) as info:
        policy.check_address("10.0.0.5")
    assert "denied by the operator (10.0.0.5/32)" in info.value.reason


def test_deny_refuses_public_addresses_and_their_ipv6_forms() -> None:
    policy = OutboundPolicy.from_strings(deny=["8.8.8.0/24"])
    for address in ("8.8.8.8", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::"):
        with pytest.raises(PolicyRefused):
            policy.check_address(address)
    policy.check_address("8.8.4.4")


def test_host_name_allow_allows_whatever_it_resolves_to() -> None:
    policy = OutboundPolicy.from_strings(allow=["localhost"])
    policy.check_address("127.0.0.1", host="localhost")
    policy.check_address("::1", host="LOCALHOST.")
    with pytest.raises(PolicyRefused) as info:
        policy.check_address("127.0.0.1", host="elsewhere.test")
    assert info.value.host == "elsewhere.test"
    with pytest.raises(PolicyRefused):
        policy.check_address("127.0.0.1")  # a bare address is not the allowed name


def test_wildcard_host_names_match_names_below_only() -> None:
    policy = OutboundPolicy.from_strings(allow=["*.internal.test"])
    policy.check_address("10.0.0.1", host="api.internal.test")
    policy.check_address("10.0.0.1", host="a.b.internal.test")
    for host in ("internal.test", "xinternal.test", "internal.test.evil"):
        with pytest.raises(PolicyRefused):
            policy.check_address("10.0.0.1", host=host)


def test_denied_host_name_beats_allowed_name_and_network() -> None:
    policy = OutboundPolicy.from_strings(allow=["localhost", "127.0.0.0/8"], deny=["localhost"])
    with pytest.raises(PolicyRefused) as info:
        policy.check_address("127.0.0.1", host="localhost")
    assert info.value.reason == "host name denied by the operator"
    with pytest.raises(PolicyRefused):
        policy.check_host("Localhost.")
    policy.check_address("127.0.0.1", host="other.test")


def test_denied_address_beats_allowed_host_name() -> None:
    policy = OutboundPolicy.from_strings(allow=["localhost"], deny=["127.0.0.1"])
    with pytest.raises(PolicyRefused):
        policy.check_address("127.0.0.1", host="localhost")
    policy.check_address("127.0.0.2", host="localhost")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("[::1]", "::1"),
        ("::ffff:7f00:1", "::ffff:127.0.0.1"),
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_numeric_hosts_are_read_as_the_os_reads_them(host: str, expected: str) -> None:
    assert numeric_host(host) == ipaddress.ip_address(expected)


@pytest.mark.parametrize(
    "host", ["localhost", "example.com", "cafe", "add.face", "1e100.net", "256.256.256.256", ""]
)
def test_host_names_are_not_numeric(host: str) -> None:
    assert numeric_host(host) is None


@settings(max_examples=100)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_numeric_host_agrees_with_inet_aton(value: int) -> None:
    expected = ipaddress.IPv4Address(socket.inet_aton(str(value)))
    assert expected == ipaddress.IPv4Address(value)
    assert numeric_host(str(value)) == expected
    assert numeric_host(hex(value)) == expected


@pytest.mark.parametrize("address", ["2130706433", "0x7f000001", "127.1"])
def test_legacy_numeric_forms_are_judged_as_the_address_they_mean(address: str) -> None:
    with pytest.raises(PolicyRefused) as info:
        OutboundPolicy().check_address(address)
    assert info.value.address == "127.0.0.1"


def test_from_strings_parses_networks_addresses_and_names() -> None:
    policy = OutboundPolicy.from_strings(
        allow=[
            "10.0.0.0/8",
            "10.1.2.3/16",
            "127.0.0.1",
            "[::1]",
            "fd00::/8",
            "Example.COM.",
            "*.Internal.test",
        ],
    )
    assert policy.allow == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("fd00::/8"),
        "example.com",
        "*.internal.test",
    )
    assert policy.deny == ()


@pytest.mark.parametrize("entry", ["", "not a host!", "10.0.0.0/33", "127.1", "2130706433", "*."])
def test_from_strings_rejects_what_is_neither_network_nor_name(entry: str) -> None:
    with pytest.raises(ValueError, match=r"outbound allow entry|empty outbound allow"):
        OutboundPolicy.from_strings(allow=[entry])


def test_policies_compare_by_their_lists() -> None:
    assert OutboundPolicy.from_strings(allow=["localhost"]) == OutboundPolicy(allow=("localhost",))
    assert OutboundPolicy() != OutboundPolicy.from_strings(deny=["10.0.0.0/8"])


class StubResolver(AbstractResolver):
    """Answers from a table and counts lookups; never touches the network."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        pass


async def test_resolver_refuses_a_name_that_resolves_only_to_refused_addresses() -> None:
    inner = StubResolver(
        {
            "metadata.test": ["169.254.169.254"],
            "cgnat.test": ["100.64.0.1"],
            "ula.test": ["fc00::1"],
            "mapped.test": ["::ffff:127.0.0.1"],
        }
    )
    resolver = PolicyResolver(OutboundPolicy(), inner)
    for name in inner.table:
        with pytest.raises(PolicyRefused) as info:
            await resolver.resolve(name, 443)
        assert info.value.host == name


async def test_resolver_drops_refused_addresses_and_keeps_allowed_ones() -> None:
    inner = StubResolver({"rebind.test": ["127.0.0.1", "8.8.8.8", "10.0.0.1", "2606:4700::1"]})
    results = await PolicyResolver(OutboundPolicy(), inner).resolve("rebind.test", 443)
    assert [r["host"] for r in results] == ["8.8.8.8", "2606:4700::1"]


async def test_resolver_honours_host_name_allow_and_deny() -> None:
    inner = StubResolver({"localhost": ["127.0.0.1", "::1"], "blocked.test": ["8.8.8.8"]})
    policy = OutboundPolicy.from_strings(allow=["localhost"], deny=["blocked.test"])
    resolver = PolicyResolver(policy, inner)
    results = await resolver.resolve("localhost", 80)
    assert [r["host"] for r in results] == ["127.0.0.1", "::1"]
    with pytest.raises(PolicyRefused):
        await resolver.resolve("blocked.test", 80)
    assert inner.lookups == ["localhost"]  # a denied name is never looked up
