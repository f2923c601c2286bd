"""A simulated user of ``bench/capacity.py`` keeps what the loss check compares: the seqs it
holds, live or replayed, and the seq up to which it holds them all."""

import random

from bench.capacity_user import Recorder, User

ROOM, OTHER = "room-a", "room-b"


def make_user() -> User:
    user = User(0, "u0", "pw", [ROOM], "http://x", "ws://x", Recorder("t"), random.Random(1))
    user.on_ack("session:join", {"session": {"id": ROOM}, "lastSeq": 10, "missed": []})
    return user


def message_new(seq: int, session: str = ROOM) -> dict:
    message = {"id": f"m{seq}", "sessionId": session, "author": {"username": "u0"}}
    return {"event": "message:new", "data": {"message": message}, "seq": seq}


def test_the_watermark_stops_at_the_first_missing_seq():
    user = make_user()
    for seq in (11, 12, 14):
        user.on_durable(message_new(seq), None)

    assert user.watermark(ROOM) == 12


def test_a_replay_fills_the_gap_and_counts_as_held():
    user = make_user()
    user.on_durable(message_new(11), None)
    user.on_durable(message_new(13), None)

    user.on_ack("session:join", {"session": {"id": ROOM}, "lastSeq": 13, "missed": [
        message_new(12),
        {"event": "message:reaction:update", "data": {"sessionId": ROOM}, "seq": 14},
    ]})  # fmt: skip

    assert user.watermark(ROOM) == 14
    assert user.messages[ROOM] == {11, 12, 13}
    assert user.first_seq[ROOM] == 10  # a rejoin does not move where the user came in


def test_frames_of_rooms_not_joined_are_not_held():
    user = make_user()
    user.on_durable(message_new(1, OTHER), None)

    assert OTHER not in user.messages


def test_an_acked_send_enters_the_ledger_under_its_seq():
    user = make_user()
    user.on_ack("message:send", {"sessionId": ROOM, "seq": 11, "id": "m11"})

    assert user.rec.acked[ROOM] == {11: "m11"}
