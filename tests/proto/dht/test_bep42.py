"""BEP 42 node-ID restriction: the BEP's test vectors, CRC-32C, exemptions."""

from __future__ import annotations

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
