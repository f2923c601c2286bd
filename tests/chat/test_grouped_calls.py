"""Calls served in groups (``chat.grouped_calls``): what arrives while a group is served goes
with the next one, results come back to their own callers, and a failure reaches only the
callers it concerns. Throttle hits (``RedisState.throttle_hit``) are counted this way."""

import asyncio

import pytest

from chat.grouped_calls import GroupedCalls
from chat.state import get_state


class Recording:
    """A ``serve`` that records its groups and can be held open."""

    def __init__(self) -> None:
        self.groups: list[list] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list) -> list:
        self.groups.append(list(items))
        await self.gate.wait()
        return [ValueError(item) if item == "bad" else item * 2 for item in items]


async def test_an_item_alone_is_served_at_once():
    serve = Recording()
    calls = GroupedCalls(serve)

    assert await asyncio.wait_for(calls.submit(21), 1) == 42
    assert serve.groups == [[21]]


async def test_items_arriving_while_a_group_is_served_go_together_next():
    serve = Recording()
    serve.gate.clear()
    calls = GroupedCalls(serve)
    first = calls.submit(1)
    await asyncio.sleep(0.01)  # the first group is out, held open
    later = [calls.submit(n) for n in (2, 3, 4)]
    serve.gate.set()

    assert await asyncio.gather(first, *later) == [2, 4, 6, 8]
    assert serve.groups == [[1], [2, 3, 4]]


async def test_a_failed_item_fails_alone_and_a_failed_group_fails_each_caller():
    serve = Recording()
    calls = GroupedCalls(serve)
    results = await asyncio.gather(calls.submit("bad"), calls.submit(5), return_exceptions=True)
    assert isinstance(results[0], ValueError) and results[1] == 10

    async def broken(items):
        raise ConnectionError("down")

    failing = GroupedCalls(broken)
    outcomes = await asyncio.gather(failing.submit(1), failing.submit(2), return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)


async def test_groups_are_no_larger_than_their_limit():
    serve = Recording()
    serve.gate.clear()
    calls = GroupedCalls(serve, group_max=2)
    pending = [calls.submit(n) for n in range(5)]
    serve.gate.set()

    assert await asyncio.gather(*pending) == [0, 2, 4, 6, 8]
    assert [len(group) for group in serve.groups] == [2, 2, 1]


@pytest.mark.django_db
async def test_throttle_hits_counted_together_keep_each_their_own_count():
    # Many hits of one key at once (one frame after another of one user) are counted in
    # order, so the limit still falls on the right one.
    state = get_state()
    outcomes = await asyncio.gather(*(state.throttle_hit("burst:1", 3, 60_000) for _ in range(5)))

    assert [o is None for o in outcomes] == [True, True, True, False, False]
    assert all(0 < o <= 60 for o in outcomes[3:])
