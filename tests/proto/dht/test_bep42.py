"""BEP 42 node-ID restriction: the BEP's test vectors, CRC-32C, exemptions."""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.dht.bep42 import crc32c, is_exempt, is_valid_node_id, node_id_for_ip

from .strategies import ipv4s, ipv6s

# BEP 42 "test vectors": IP, rand, example node ID.
VECTORS = [
    ("124.31.75.21", 1, "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
    ("21.75.31.124", 86, "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
    ("65.23.51.170", 22, "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
    ("84.124.73.14", 65, "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
    ("43.213.53.83", 90, "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
]


def test_crc32c_check_values() -> None:
    # RFC 3720 B.4 / the standard CRC catalogue check value and an all-zero vector.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"") == 0


@pytest.mark.parametrize(("ip", "rand", "hex_id"), VECTORS)
def test_bep42_vectors_validate(ip: str, rand: int, hex_id: str) -> None:
    node_id = bytes.fromhex(hex_id)
    assert node_id[-1] == rand
    assert is_valid_node_id(ip, node_id)
    # Flip a bit inside the 21-bit prefix: no longer valid.
    for bit in (0, 10, 20):
        bad = bytearray(node_id)
        bad[bit // 8] ^= 0x80 >> (bit % 8)
        assert not is_valid_node_id(ip, bytes(bad))
    # Changing r (low 3 bits of the last byte) changes the required prefix.
    bad_r = node_id[:-1] + bytes([(rand & 0xF8) | ((rand + 1) & 7)])
    assert not is_valid_node_id(ip, bad_r)


@pytest.mark.parametrize(("ip", "rand", "hex_id"), VECTORS)
def test_generated_ids_match_vector_prefix(ip: str, rand: int, hex_id: str) -> None:
    class FixedRand(random.Random):
        def getrandbits(self, k: int) -> int:
            return rand if k == 8 else super().getrandbits(k)

    node_id = node_id_for_ip(ip, FixedRand(0))
    want = bytes.fromhex(hex_id)
    assert node_id[:2] == want[:2]
    assert node_id[2] & 0xF8 == want[2] & 0xF8
    assert node_id[-1] == rand


@given(ipv4s | ipv6s, st.randoms(use_true_random=False))
def test_generated_ids_are_valid(ip: str, rng: random.Random) -> None:
    node_id = node_id_for_ip(ip, rng)
    assert len(node_id) == 20
    assert is_valid_node_id(ip, node_id)


def test_random_ids_are_invalid_for_public_ips() -> None:
    # A random id passes with probability 2**-21, so 2,000 tries should all fail.
    rng = random.Random(42)
    ips = ["8.8.8.8", "2001:db8::1", "124.31.75.21"]
    assert not any(is_valid_node_id(ip, rng.randbytes(20)) for ip in ips for _ in range(700))


@pytest.mark.parametrize(
    ("ip", "exempt"),
    [
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("172.31.255.255", True),
        ("172.32.0.1", False),
        ("192.168.1.1", True),
        ("169.254.3.4", True),
        ("127.0.0.1", True),
        ("::1", True),
        ("fe80::1", True),
        ("fd00::5", True),
        ("8.8.8.8", False),
        ("2001:db8::1", False),
    ],
)
def test_exemptions(ip: str, exempt: bool) -> None:
    assert is_exempt(ip) is exempt
    if exempt:
        assert is_valid_node_id(ip, bytes(20))


def test_wrong_length_id_is_invalid() -> None:
    assert not is_valid_node_id("127.0.0.1", bytes(19))


# ---- the integer fast paths agree with a literal reading of the BEP -------------------

_REF_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "::1/128",
        "fe80::/10",
        "fc00::/7",
    )
]


def reference_is_exempt(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(addr in net for net in _REF_NETS if net.version == addr.version)


def reference_is_valid(ip: str, node_id: bytes) -> bool:
    """BEP 42's example code, byte by byte."""
    if reference_is_exempt(ip):
        return True
    packed = ipaddress.ip_address(ip).packed
    mask = (
        [0x03, 0x0F, 0x3F, 0xFF]
        if len(packed) == 4
        else [0x01, 0x03, 0x07, 0x0F, 0x1F, 0x3F, 0x7F, 0xFF]
    )
    masked = bytearray(a & m for a, m in zip(packed, mask, strict=False))
    masked[0] |= (node_id[-1] & 0x07) << 5
    crc = crc32c(bytes(masked))
    return (
        node_id[0] == (crc >> 24) & 0xFF
        and node_id[1] == (crc >> 16) & 0xFF
        and node_id[2] & 0xF8 == (crc >> 8) & 0xF8
    )


# Addresses in and around every exempt block, plus anywhere.
near_exempt = st.sampled_from(_REF_NETS).flatmap(
    lambda net: st.integers(-(1 << 8), net.num_addresses + (1 << 8)).map(
        lambda off: str(
            ipaddress.ip_address(
                min(max(int(net.network_address) + off, 0), (1 << net.max_prefixlen) - 1)
            )
            if net.version == 4
            else ipaddress.IPv6Address(min(max(int(net.network_address) + off, 0), (1 << 128) - 1))
        )
    )
)
any_ip = near_exempt | ipv4s | ipv6s | st.ip_addresses().map(str)


@given(any_ip)
def test_exemption_matches_the_network_list(ip: str) -> None:
    assert is_exempt(ip) == reference_is_exempt(ip)


@given(any_ip, st.binary(min_size=20, max_size=20))
def test_validity_matches_the_bep_example_code(ip: str, node_id: bytes) -> None:
    assert is_valid_node_id(ip, node_id) == reference_is_valid(ip, node_id)


@given(ipv4s | ipv6s, st.randoms(use_true_random=False), st.integers(0, 19))
def test_generated_ids_match_the_example_code_and_any_bit_flip_in_the_prefix_breaks_them(
    ip: str, rng: random.Random, byte: int
) -> None:
    node_id = node_id_for_ip(ip, rng)
    assert reference_is_valid(ip, node_id)
    if reference_is_exempt(ip):
        return
    flipped = bytearray(node_id)
    flipped[byte % 3] ^= 0x80 >> (byte % 5)  # a bit among the 21 checked ones
    assert not is_valid_node_id(ip, bytes(flipped))
