"""Which limit an event counts against: the contract's per-event defaults, per session on
one connection for joins, the shared ``WS_THROTTLE_LIMIT`` for the rest; and a settings
module (the benchmarks') can raise them."""

from chat.throttles import Rule, rule_for


def test_the_contract_defaults_apply_per_event():
    assert rule_for("message:send") == Rule(30)
    assert rule_for("message:edit") == Rule(20)
    assert rule_for("typing:start") == Rule(100)
    assert rule_for("stream:request") == Rule(10)
    assert rule_for("session:join") == Rule(5, per_connection=True)


def test_an_event_with_no_rule_shares_the_default_window(settings):
    settings.WS_THROTTLE_LIMIT, settings.WS_THROTTLE_TTL = 7, 1000

    assert rule_for("message:seen") == Rule(7, 1000)


def test_a_settings_module_can_raise_an_events_limit(settings):
    settings.WS_EVENT_LIMITS = {**settings.WS_EVENT_LIMITS, "message:send": 10**9}

    assert rule_for("message:send").limit == 10**9
