"""Hypothesis strategies for uTP packets."""

from __future__ import annotations

from hypothesis import strategies as st

from shoal.utp.packet import SACK_EXTENSION, Packet, PacketType

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def extensions(draw: st.DrawFn) -> tuple[tuple[int, bytes], ...]:
    out: list[tuple[int, bytes]] = []
    if draw(st.booleans()):
        out.append((SACK_EXTENSION, draw(st.binary(min_size=1, max_size=8)) * 4))
    for _ in range(draw(st.integers(0, 2))):
        out.insert(
            draw(st.integers(0, len(out))),
            (draw(st.integers(2, 255)), draw(st.binary(max_size=12))),
        )
    return tuple(out)


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    kind = draw(st.sampled_from(PacketType))
    payload = draw(st.binary(min_size=1, max_size=64)) if kind is PacketType.DATA else b""
    return Packet(
        kind,
        draw(u16),
        draw(u32),
        draw(u32),
        draw(u32),
        draw(u16),
        draw(u16),
        payload,
        draw(extensions()),
    )
