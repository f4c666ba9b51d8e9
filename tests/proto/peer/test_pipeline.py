"""RequestPipeline: deadlines in order, rate window, RTT probes, snub clock, depth clamp."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.peer.pipeline import RequestPipeline

B = 16 * 1024


def pipe(**kw: float) -> RequestPipeline:
    args: dict[str, float] = {"request_timeout": 10.0, "snub_timeout": 30.0} | kw
    return RequestPipeline(**args)  # type: ignore[arg-type]


def test_deadlines_expire_in_request_order() -> None:
    p = pipe()
    p.add((0, 0, B), 0.0)
    p.add((0, B, B), 1.0)
    p.add((1, 0, B), 2.0)
    assert p.next_deadline() == 10.0
    assert p.expire(10.5) == [(0, 0, B)]
    assert p.expire(12.0) == [(0, B, B), (1, 0, B)]
    assert len(p) == 0
    assert p.next_deadline() is None


def test_rtt_is_sampled_only_from_a_request_sent_into_an_empty_pipeline() -> None:
    p = pipe()
    p.add((0, 0, B), 0.0)  # the probe
    p.add((0, B, B), 0.0)
    assert p.block_received((0, B, B), 5.0)  # queued behind the probe: no sample
    assert p.srtt is None
    assert p.block_received((0, 0, B), 0.2)
    assert p.srtt == pytest.approx(0.2)
    p.add((1, 0, B), 1.0)
    p.block_received((1, 0, B), 1.6)
    assert p.srtt == pytest.approx(0.875 * 0.2 + 0.125 * 0.6)


def test_unknown_block_changes_nothing() -> None:
    p = pipe()
    p.add((0, 0, B), 0.0)
    assert not p.block_received((9, 0, B), 1.0)
    assert p.rate(1.0) == 0.0
    assert len(p) == 1


def test_rate_counts_the_window_and_decays_to_zero() -> None:
    p = pipe()
    for i in range(10):
        p.add((i, 0, B), i * 0.1)
        p.block_received((i, 0, B), i * 0.1 + 0.05)
    # 10 blocks within the first second: the span is clamped to 1 s.
    assert p.rate(1.0) == pytest.approx(10 * B)
    assert p.rate(2.0) == pytest.approx(10 * B / 2.0)
    assert p.rate(7.0) == 0.0, "blocks older than the 5 s window are forgotten"


def test_snub_clock_starts_with_the_first_request_and_resets_on_a_block() -> None:
    p = pipe(request_timeout=100.0)
    assert not p.check_snub(1000.0), "nothing outstanding: never snubbed"
    p.add((0, 0, B), 10.0)
    p.add((0, B, B), 20.0)
    assert p.next_deadline() == 40.0
    assert not p.check_snub(39.0)
    p.block_received((0, 0, B), 39.0)
    assert p.next_deadline() == 69.0
    assert p.check_snub(69.0)
    assert not p.check_snub(70.0), "reported once"
    assert p.depth(70.0) == 1
    p.block_received((0, B, B), 80.0)
    assert not p.snubbed
    assert p.next_deadline() is None


@given(
    st.floats(0, 1e9, allow_nan=False),
    st.floats(0, 10, allow_nan=False),
    st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_depth_is_always_within_its_clamp(rate: float, srtt: float, reqq: int | None) -> None:
    p = pipe()
    p.add((0, 0, B), 0.0)
    p.block_received((0, 0, B), srtt)
    p._window_bytes = rate  # a rate over the 1 s minimum span
    depth = p.depth(srtt, reqq)
    cap = 250 if reqq is None else max(1, min(250, reqq))
    assert min(2, cap) <= depth <= cap


def test_depth_follows_the_bandwidth_delay_product() -> None:
    p = pipe(min_queue_time=0.5)
    p.add((0, 0, B), 0.0)
    p.block_received((0, 0, B), 2.0)  # srtt 2 s, rate 16 KiB over 2 s
    assert p.depth(2.0) == 2  # ceil(8 KiB/s × 2 s / 16 KiB) = 1 → min depth 2
    p._window_bytes = 100 * B
    assert p.depth(2.0) == 100  # 50 blocks/s × 2 s


def test_bad_clamp_refused() -> None:
    with pytest.raises(ValueError):
        RequestPipeline(request_timeout=1.0, snub_timeout=1.0, min_depth=5, max_depth=4)
