"""The client-wide send budget (`shoal.session.send_budget`): counting and the cap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal import ClientConfig
from shoal.session.send_budget import MAX_SEND_BACKLOG, SQUEEZED_BACKLOG, SendBudget


def test_under_the_budget_a_peer_has_its_own_cap() -> None:
    budget = SendBudget(4 * MAX_SEND_BACKLOG)
    budget.adjust(4 * MAX_SEND_BACKLOG)
    assert budget.peer_cap() == MAX_SEND_BACKLOG
    assert not budget.backlogged(MAX_SEND_BACKLOG)
    assert budget.backlogged(MAX_SEND_BACKLOG + 1)


def test_over_the_budget_every_peer_is_squeezed_until_bytes_are_sent() -> None:
    budget = SendBudget(1000)
    budget.adjust(1001)
    assert budget.over
    assert budget.peer_cap() == SQUEEZED_BACKLOG
    assert budget.backlogged(SQUEEZED_BACKLOG + 1)
    assert not budget.backlogged(0)  # a peer that reads still gets served
    budget.adjust(-1)
    assert not budget.over
    assert budget.peak == 1001


def test_none_is_no_client_wide_cap() -> None:
    budget = SendBudget(None)
    budget.adjust(1 << 40)
    assert budget.peer_cap() == MAX_SEND_BACKLOG


@given(st.lists(st.integers(0, 1 << 24), max_size=50))
def test_counting_back_what_was_counted_leaves_zero(sizes: list[int]) -> None:
    budget = SendBudget(1 << 20)
    for n in sizes:
        budget.adjust(n)
    for n in sizes:
        budget.adjust(-n)
    assert budget.queued == 0
    assert budget.peak == sum(sizes)
    assert not budget.over


def test_the_config_field() -> None:
    assert ClientConfig().max_send_queued == 64 * 1024 * 1024
    assert ClientConfig(max_send_queued=None).max_send_queued is None
    with pytest.raises(ValueError, match="max_send_queued"):
        ClientConfig(max_send_queued=-1)
    with pytest.raises(ValueError):
        SendBudget(-1)
