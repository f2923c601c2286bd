"""The load model of ``bench/capacity.py``: its defaults, and the population it runs.

The defaults are the issue's model of a chat workspace; every one of them is an option of
the command. The population is built once for the largest step (registered users = the
largest step): rooms of the given sizes until every user sits in ``ROOMS_PER_USER`` rooms,
and for each user the room they have open plus the others they join. A step's concurrent
users are the first N of it, so a step keeps the users of the steps before it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# --- defaults (the load model) --------------------------------------------------------
ROOM_SIZES = ((0.70, 2, 10), (0.25, 11, 50), (0.05, 100, 500))  # (share of rooms, min, max)
ROOMS_PER_USER = 5  # rooms each user is a member of
ROOMS_JOINED = 1  # rooms a user's socket joins: 1 is the web app (the room open), 5 Slack-like
MESSAGE_EVERY_S = 60.0  # mean gap between one user's messages (Poisson)
TYPING_LEAD_S = (1.0, 3.0)  # typing:start this long before each message; typing:stop on send
RECEIPT_DEBOUNCE_S = 0.6  # the web app's debounce: one receipt for the newest message
LOOKING_SHARE = 0.5  # chance that a receipt finds its user looking (seen) rather than not
REACTION_EVERY_S = 300.0  # mean gap between one user's reactions (Poisson)
RECONNECT_EVERY_S = 600.0  # mean gap between one user's reconnects (Poisson)
MESSAGES_PER_ASSISTANT = 200  # one stream:request per this many messages
FIRST_TOKEN_MS = (600, 3000)  # the emulator's first-token delay range
CHUNK_GAP_MS = (30, 80)  # the emulator's delay range between chunks
ANSWER_TOKENS = 60  # tokens in an assistant answer
STEPS = (250, 500, 1000, 2000, 3000, 4000, 5000, 6000)  # concurrent users per step
RAMP_S = 60.0  # a step's new users log in, connect and join over this long (at least 60 s)
HOLD_S = 60.0  # then everyone keeps going this long: the measured window
TARGET_P99_MS = 200.0  # a step holds while p99 send-to-receive and of every reply is under it
QUICK = {"steps": (50, 100), "ramp": 10.0, "hold": 10.0}  # --quick: a smoke run


@dataclass(frozen=True)
class Room:
    index: int
    members: tuple[int, ...]  # user indexes; the first is the room's owner


@dataclass(frozen=True)
class Population:
    users: int
    rooms: tuple[Room, ...]
    joined: tuple[tuple[int, ...], ...]  # per user: room indexes joined, the open room first


def room_sizes(users: int, rng: random.Random, *, per_user: int = ROOMS_PER_USER,
               classes=ROOM_SIZES) -> list[int]:  # fmt: skip
    """Sizes of rooms drawn from ``classes`` (a room's class by share, its size uniform in the
    class's range, never more than ``users``) until they hold ``users * per_user`` seats
    exactly: the last room takes what is left (joined to the one before if under 2)."""
    seats = users * per_user
    sizes: list[int] = []
    weights = [share for share, _, _ in classes]
    while sum(sizes) < seats:
        _, low, high = rng.choices(classes, weights)[0]
        sizes.append(min(users, rng.randint(low, high)))
    sizes[-1] -= sum(sizes) - seats
    if sizes[-1] < 2 and len(sizes) > 1:
        rest = sizes.pop()
        spill = max(0, sizes[-1] + rest - users)
        sizes[-1] += rest - spill
        if spill:
            sizes.append(spill)
    return sizes


def build_population(users: int, *, seed: int = 19, per_user: int = ROOMS_PER_USER,
                     joined: int = ROOMS_JOINED, classes=ROOM_SIZES) -> Population:  # fmt: skip
    """Rooms for ``users`` users, each user in exactly ``per_user`` of them (no user twice in
    a room), and the rooms each user joins: ``joined`` of theirs, the open one first."""
    if users < per_user:
        raise ValueError(f"at least {per_user} users are needed to seat each in {per_user} rooms")
    rng = random.Random(seed)
    sizes = sorted(room_sizes(users, rng, per_user=per_user, classes=classes), reverse=True)
    left = [per_user] * users
    members: list[list[int]] = []
    order = list(range(users))
    # Largest rooms first, each filled with the users with the most seats left (ties broken
    # at random): with every size <= users and the seats adding up, this never gets stuck.
    for size in sizes:
        rng.shuffle(order)
        order.sort(key=lambda u: -left[u])
        chosen = order[:size]
        for user in chosen:
            left[user] -= 1
        members.append(sorted(chosen))
    if any(left):
        raise RuntimeError("could not seat every user")  # unreachable for sizes from room_sizes
    rooms = tuple(Room(i, tuple(m)) for i, m in enumerate(members))
    theirs: list[list[int]] = [[] for _ in range(users)]
    for room in rooms:
        for user in room.members:
            theirs[user].append(room.index)
    picks = []
    for user in range(users):
        mine = theirs[user][:]
        rng.shuffle(mine)
        picks.append(tuple(mine[: max(1, min(joined, len(mine)))]))
    return Population(users=users, rooms=rooms, joined=tuple(picks))
