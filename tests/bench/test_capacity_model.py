"""The population of ``bench/capacity.py``: the rooms and seats its load model promises."""

from collections import Counter

import pytest

from bench.capacity_model import ROOM_SIZES, build_population


def test_every_user_sits_in_five_rooms_once_each():
    population = build_population(600)

    seats = Counter(user for room in population.rooms for user in room.members)
    assert set(seats) == set(range(600))
    assert set(seats.values()) == {5}
    assert all(len(set(room.members)) == len(room.members) for room in population.rooms)


def test_room_sizes_follow_the_model_shares():
    population = build_population(6000)

    sizes = [len(room.members) for room in population.rooms]
    classes = Counter(
        next(k for k, (_, low, high) in enumerate(ROOM_SIZES) if low <= size <= high)
        for size in sizes[:-1]  # the last room takes the seats left over
    )
    shares = [classes[k] / sum(classes.values()) for k in range(len(ROOM_SIZES))]
    assert shares == pytest.approx([share for share, _, _ in ROOM_SIZES], abs=0.05)


def test_rooms_never_outgrow_a_small_population():
    population = build_population(40)

    assert max(len(room.members) for room in population.rooms) <= 40
    assert min(len(room.members) for room in population.rooms) >= 2


def test_users_join_their_own_rooms_the_open_one_first():
    web = build_population(300, joined=1)
    slack = build_population(300, joined=5)

    for user in range(300):
        mine = {room.index for room in slack.rooms if user in room.members}
        assert len(web.joined[user]) == 1
        assert set(slack.joined[user]) == mine
        assert web.joined[user][0] == slack.joined[user][0]  # same seed: same open room


def test_the_same_seed_builds_the_same_population():
    assert build_population(200, seed=3) == build_population(200, seed=3)
    assert build_population(200, seed=3) != build_population(200, seed=4)
