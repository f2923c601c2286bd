"""The stream runner against the Ollama emulator, through a real ``ChatOllama`` over HTTP:
coalescing, numbering, token counts, tools, every failure mode, stopping."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time

import pytest
from langchain_core.messages import HumanMessage
from prometheus_client import REGISTRY

from llm import stream_errors
from llm.provider import ModelConfig, chat_model, model_config
from llm.runner import delta_max_chars, run_stream
from llm.stream_events import (
    StreamChunk,
    StreamComplete,
    StreamEnd,
    StreamError,
    StreamStart,
    StreamStopped,
    StreamTool,
)
from llm.tools import build_tools

# Generous bounds: a loaded 2-core machine must pass, and a hang still ends.
WITHIN_S = 30
DISCONNECT_WITHIN_S = 5


def model_for(server, model: str = "llama3.2", max_tokens: int = 2048, **kwargs):
    config = ModelConfig(
        model=model, temperature=kwargs.pop("temperature", None), max_tokens=max_tokens
    )
    return chat_model(config, base_url=server if isinstance(server, str) else server.url)


async def run(llm, prompt="hi", **kwargs) -> list:
    async with asyncio.timeout(WITHIN_S):
        return [event async for event in run_stream(llm, [HumanMessage(prompt)], **kwargs)]


def chunks(events) -> list[StreamChunk]:
    return [e for e in events if isinstance(e, StreamChunk)]


def assert_well_formed(events) -> StreamEnd:
    """Start first, one ending last, chunks numbered from 0 and adding up to the content."""
    assert isinstance(events[0], StreamStart)
    endings = [e for e in events if isinstance(e, StreamEnd)]
    assert len(endings) == 1 and events[-1] is endings[0]
    parts = chunks(events)
    assert [c.index for c in parts] == list(range(len(parts)))
    assert "".join(c.delta for c in parts) == endings[0].content
    return endings[0]


@pytest.fixture(autouse=True)
def _short_timeouts(settings):
    settings.OLLAMA_READ_TIMEOUT = 30


# -- when the model is asked and read ----------------------------------------------------


async def test_the_request_to_ollama_is_on_its_way_when_the_start_is_yielded(ollama_emulator):
    events = run_stream(model_for(ollama_emulator), [HumanMessage("go")])

    async with asyncio.timeout(WITHIN_S), contextlib.aclosing(events):
        assert isinstance(await anext(events), StreamStart)
        # Not asked for anything more: the request was made with the start.
        request = await ollama_emulator.await_event("request", within=WITHIN_S)

    assert request["messages"] == [{"role": "user", "content": "go"}]


async def test_the_event_loop_stays_free_while_the_caller_works_on_a_chunk(ollama_emulator):
    # The whole answer waits in the socket at once, and a reader that kept the event loop
    # while the caller works on the first chunk (a broadcast: Redis round trips) would hold
    # that work until much of the answer had been read. CPU time, not wall time, between
    # two turns of another task: a busy machine does not count, and nor does a collection.
    ollama_emulator.configure(num_tokens=3000)
    events = run_stream(
        model_for(ollama_emulator, max_tokens=4096), [HumanMessage("go")], stream_delay_ms=60_000
    )
    gaps: list[float] = []

    async def other_task():
        last = time.thread_time()
        while True:
            await asyncio.sleep(0)
            now = time.thread_time()
            gaps.append(now - last)
            last = now

    async with asyncio.timeout(WITHIN_S), contextlib.aclosing(events):
        async for event in events:
            if isinstance(event, StreamChunk) and event.index == 0:
                gc.disable()
                ticking = asyncio.create_task(other_task())
                try:
                    await asyncio.sleep(0.3)
                finally:
                    ticking.cancel()
                    gc.enable()
            end = event

    assert isinstance(end, StreamComplete) and end.tokens == 3000
    # The reader gives the loop back every few milliseconds of reading (``READ_SLICE_S``).
    assert len(gaps) > 10 and max(gaps) < 0.02, f"the loop was held for {max(gaps):.3f} s"


async def test_what_is_read_while_the_caller_is_busy_goes_out_in_few_chunks(ollama_emulator):
    # A caller slower than STREAM_DELAY (a loaded worker) gets the text that arrived
    # meanwhile coalesced, not one chunk per token.
    ollama_emulator.configure(num_tokens=300)
    events = run_stream(model_for(ollama_emulator), [HumanMessage("go")], stream_delay_ms=50)
    received = []

    async with asyncio.timeout(WITHIN_S), contextlib.aclosing(events):
        async for event in events:
            received.append(event)
            if isinstance(event, StreamChunk):
                await asyncio.sleep(0.1)

    end = assert_well_formed(received)
    assert isinstance(end, StreamComplete) and end.tokens == 300
    assert len(chunks(received)) < 30


# -- coalescing and numbering ------------------------------------------------------------


async def test_first_delta_goes_out_alone_and_the_rest_are_coalesced(ollama_emulator):
    ollama_emulator.configure(tokens=["Hel", "lo", ",", " world"])

    events = await run(model_for(ollama_emulator), stream_delay_ms=60_000)

    end = assert_well_formed(events)
    first, last = chunks(events)
    assert (first.index, first.delta, first.is_complete) == (0, "Hel", False)
    assert (last.index, last.delta, last.is_complete) == (1, "lo, world", True)
    assert last.content == end.content == "Hello, world"
    assert first.content is None


async def test_a_coalesced_delta_goes_out_once_it_reaches_the_chunk_size_limit(ollama_emulator):
    # However long the delay, a chunk is a frame and frames are capped: the text buffered
    # goes out once it reaches delta_max_chars().
    token = "漢字ü😀" * 25
    ollama_emulator.configure(tokens=[token] * 2000)

    events = await run(model_for(ollama_emulator, max_tokens=4096), stream_delay_ms=60_000)

    end = assert_well_formed(events)
    assert len(end.content) == 2000 * len(token)
    assert len(chunks(events)) > len(end.content) // delta_max_chars()
    assert max(len(c.delta) for c in chunks(events)) < delta_max_chars() + len(token)


async def test_the_chunk_size_limit_follows_a_lowered_frame_cap(ollama_emulator, settings):
    # A deployment (or a test) that lowers the frame cap lowers the delta limit with it, so a
    # chunk of multibyte text never becomes a frame over the cap.
    settings.WS_SEND_MAX_BYTES = 8192
    token = "漢字ü😀 "
    ollama_emulator.configure(tokens=[token] * 3000)

    events = await run(model_for(ollama_emulator, max_tokens=4096), stream_delay_ms=60_000)

    assert delta_max_chars() == 512
    assert max(len(c.delta) for c in chunks(events)) < 512 + len(token)


async def test_no_delay_sends_every_delta_then_a_closing_chunk(ollama_emulator):
    ollama_emulator.configure(tokens=["a", "b", "c"])

    events = await run(model_for(ollama_emulator), stream_delay_ms=0)

    assert_well_formed(events)
    assert [(c.delta, c.is_complete) for c in chunks(events)] == [
        ("a", False),
        ("b", False),
        ("c", False),
        ("", True),
    ]


async def test_a_buffered_delta_is_sent_when_the_delay_passes_even_if_the_model_pauses(
    ollama_emulator,
):
    # "b" arrives right after "a" (which went out at once), then the model stalls: "b" must
    # not wait for a next token that never comes.
    ollama_emulator.configure(tokens=["a", "b", "c"], failure="stall", fail_after=2)
    received = []

    async with asyncio.timeout(WITHIN_S):
        stream = run_stream(model_for(ollama_emulator), [HumanMessage("x")], stream_delay_ms=200)
        async with contextlib.aclosing(stream):
            async for event in stream:
                if isinstance(event, StreamChunk):
                    received.append(event.delta)
                if "".join(received) == "ab":
                    break

    assert received == ["a", "b"]
    await ollama_emulator.await_event("disconnect", within=DISCONNECT_WITHIN_S)


async def test_indexes_are_contiguous_and_deltas_add_up_on_a_long_answer(ollama_emulator):
    ollama_emulator.configure(reply="one two three four five", num_tokens=80, delay_ms=1)

    events = await run(model_for(ollama_emulator), stream_delay_ms=15)

    end = assert_well_formed(events)
    assert isinstance(end, StreamComplete)
    assert len(end.content.split()) == 80
    assert chunks(events)[0].delta == "one"


# -- tokens and model settings -----------------------------------------------------------


async def test_tokens_are_ollamas_counts(ollama_emulator):
    ollama_emulator.configure(tokens=["a", "b", "c", "d"], prompt_eval_count=17)

    events = await run(model_for(ollama_emulator), stream_delay_ms=0)

    end = assert_well_formed(events)
    assert (end.tokens, end.prompt_tokens) == (4, 17)
    counts = [c.tokens for c in chunks(events)]
    assert counts == sorted(counts) and counts[-1] == 4
    assert end.finish_reason == "stop" and end.model == "llama3.2"
    assert end.latency_ms is not None and end.duration_ms >= end.latency_ms


async def test_max_tokens_is_num_predict_and_ends_with_length(ollama_emulator):
    ollama_emulator.configure(num_tokens=50)

    events = await run(model_for(ollama_emulator, max_tokens=5, temperature=0.3))

    end = assert_well_formed(events)
    assert (end.tokens, end.finish_reason) == (5, "length")
    options = ollama_emulator.requests()[0]["options"]
    assert options["num_predict"] == 5 and options["temperature"] == 0.3


def test_request_config_wins_over_agent_over_settings(settings):
    from llm.models import Agent

    settings.OLLAMA_MODEL = "default-model"
    agent = Agent(name="a", model="agent-model", temperature=0.1, max_tokens=100)

    assert model_config() == ModelConfig("default-model", None, 2048)
    assert model_config(agent=agent) == ModelConfig("agent-model", 0.1, 100)
    chosen = model_config(agent=agent, config={"model": "mine", "temperature": 0.9})
    assert chosen == ModelConfig("mine", 0.9, 100)


# -- tools ---------------------------------------------------------------------------------


async def test_a_tool_call_is_run_reported_and_fed_back(ollama_emulator):
    ollama_emulator.configure(
        tool_calls=[{"name": "calculator", "arguments": {"expression": "6 * 7"}}],
        prompt_eval_count=10,
    )

    events = await run(
        model_for(ollama_emulator), "what is 6*7?", tools=build_tools(["calculator"]),
        stream_delay_ms=0,
    )  # fmt: skip

    end = assert_well_formed(events)
    (tool,) = [e for e in events if isinstance(e, StreamTool)]
    assert (tool.name, tool.args, tool.result) == ("calculator", {"expression": "6 * 7"}, "42")
    assert end.content == "Tool result: 42"
    assert end.tool_calls == [
        {"name": "calculator", "args": {"expression": "6 * 7"}, "result": "42"}
    ]
    assert end.prompt_tokens == 20, "both requests' prompts are counted"
    assert end.tokens == 10 + 3, "the tool call's tokens, then the answer's"
    first, second = ollama_emulator.requests()
    assert [t["function"]["name"] for t in first["tools"]] == ["calculator"]
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool"]
    assert second["messages"][2]["content"] == "42"


async def test_a_call_to_an_unknown_tool_is_answered_with_an_error_and_the_answer_goes_on(
    ollama_emulator,
):
    ollama_emulator.configure(tool_calls=[{"name": "rm_rf", "arguments": {}}])

    events = await run(model_for(ollama_emulator), tools=build_tools(["calculator"]))

    end = assert_well_formed(events)
    assert isinstance(end, StreamComplete) and end.errors == 1
    (tool,) = [e for e in events if isinstance(e, StreamTool)]
    assert tool.result.startswith("error:")


# -- failures --------------------------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("script", "code", "partial"),
    [
        ({"failure": "http_503"}, stream_errors.LLM_UNAVAILABLE, ""),
        ({"failure": "error_line", "fail_after": 2}, stream_errors.LLM_UNAVAILABLE, "ab"),
        ({"failure": "cut", "fail_after": 1}, stream_errors.LLM_UNAVAILABLE, "a"),
        ({"failure": "no_done"}, stream_errors.LLM_UNAVAILABLE, "abc"),
    ],
)
async def test_each_failure_ends_with_its_code_and_keeps_the_partial_text(
    ollama_emulator, script, code, partial
):
    ollama_emulator.configure(tokens=["a", "b", "c"], **script)

    events = await run(model_for(ollama_emulator), stream_delay_ms=0)

    end = assert_well_formed(events)
    assert isinstance(end, StreamError)
    assert (end.code, end.content) == (code, partial)
    assert end.message and end.errors == 1


async def test_an_unknown_model_is_invalid_model(ollama_emulator):
    events = await run(model_for(ollama_emulator, model="no-such-model"))

    end = assert_well_formed(events)
    assert end.code == stream_errors.INVALID_MODEL and "no-such-model" in end.message


async def test_ollama_down_is_llm_unavailable():
    events = await run(model_for(closed_port_url()))

    end = assert_well_formed(events)
    assert (end.code, end.content) == (stream_errors.LLM_UNAVAILABLE, "")


async def test_a_stalled_model_times_out(ollama_emulator, settings):
    settings.OLLAMA_READ_TIMEOUT = 0.5
    ollama_emulator.configure(tokens=["a", "b"], failure="stall", fail_after=1)

    events = await run(model_for(ollama_emulator), stream_delay_ms=0)

    end = assert_well_formed(events)
    assert (end.code, end.content) == (stream_errors.LLM_UNAVAILABLE, "a")
    await ollama_emulator.await_event("disconnect", within=DISCONNECT_WITHIN_S)


# -- stopping ----------------------------------------------------------------------------------


async def test_stop_ends_with_stopped_and_closes_the_ollama_request(ollama_emulator):
    ollama_emulator.configure(num_tokens=500, delay_ms=20)
    stop = asyncio.Event()
    events = []

    async with asyncio.timeout(WITHIN_S):
        async for event in run_stream(
            model_for(ollama_emulator), [HumanMessage("go")], stop=stop, stream_delay_ms=0
        ):
            events.append(event)
            if isinstance(event, StreamChunk) and event.index == 2:
                stopped_at = time.time()
                stop.set()

    end = assert_well_formed(events)
    assert isinstance(end, StreamStopped) and end.content
    gone = await ollama_emulator.await_event("disconnect", within=DISCONNECT_WITHIN_S)
    assert gone["at"] - stopped_at < DISCONNECT_WITHIN_S and gone["tokens_sent"] < 500
    assert ollama_emulator.events("complete") == []


async def test_a_stop_between_two_lines_closes_the_response_then_not_at_collection(
    ollama_emulator,
):
    # The whole answer waits in the socket, so the reader is often between two lines (giving
    # the loop back) when the stop comes: the response must be closed there and then, not
    # left to the garbage collector (whose finalizer would try to close nested generators
    # out of order and report it).
    ollama_emulator.configure(num_tokens=3000)
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    stop = asyncio.Event()
    try:
        events = run_stream(
            model_for(ollama_emulator, max_tokens=4096), [HumanMessage("go")], stop=stop,
            stream_delay_ms=0,
        )  # fmt: skip
        async with asyncio.timeout(WITHIN_S), contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, StreamChunk) and event.index == 50:
                    stop.set()
                end = event
        gc.collect()
        await asyncio.sleep(0.2)
    finally:
        loop.set_exception_handler(None)

    assert isinstance(end, StreamStopped)
    assert reported == []


async def test_cancelling_the_consumer_closes_the_ollama_request(ollama_emulator):
    ollama_emulator.configure(num_tokens=500, delay_ms=20)
    started = asyncio.Event()

    async def consume():
        async for event in run_stream(model_for(ollama_emulator), [HumanMessage("go")]):
            if isinstance(event, StreamChunk):
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), WITHIN_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    gone = await ollama_emulator.await_event("disconnect", within=DISCONNECT_WITHIN_S)
    assert gone["tokens_sent"] < 500


async def test_stop_before_the_first_token_closes_the_ollama_request(ollama_emulator):
    ollama_emulator.configure(first_delay_ms=60_000)
    stop = asyncio.Event()
    llm = model_for(ollama_emulator)

    async def stop_once_asked():
        await ollama_emulator.await_event("request", within=WITHIN_S)
        stop.set()

    stopper = asyncio.create_task(stop_once_asked())
    events = await run(llm, stop=stop)
    await stopper

    end = assert_well_formed(events)
    assert isinstance(end, StreamStopped) and (end.content, end.latency_ms) == ("", None)
    gone = await ollama_emulator.await_event("disconnect", within=DISCONNECT_WITHIN_S)
    assert gone["tokens_sent"] == 0


# -- the worker's metrics ----------------------------------------------------------------------


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_an_answer_counts_as_running_until_it_ends(ollama_emulator):
    ollama_emulator.configure(tokens=["a", "b"])
    before = sample("chat_llm_streams_running")
    events = run_stream(model_for(ollama_emulator), [HumanMessage("go")])

    async with asyncio.timeout(WITHIN_S), contextlib.aclosing(events):
        assert isinstance(await anext(events), StreamStart)
        running = sample("chat_llm_streams_running")
        rest = [event async for event in events]

    assert isinstance(rest[-1], StreamComplete)
    assert running == before + 1
    assert sample("chat_llm_streams_running") == before


async def test_the_tokens_of_an_answer_are_counted_as_ollama_counts_them(ollama_emulator):
    ollama_emulator.configure(
        tool_calls=[{"name": "calculator", "arguments": {"expression": "1+1"}}]
    )
    before = sample("chat_llm_tokens_streamed_total")

    events = await run(model_for(ollama_emulator), tools=build_tools(["calculator"]))

    end = assert_well_formed(events)
    assert end.tokens == 10 + 3
    assert sample("chat_llm_tokens_streamed_total") == before + end.tokens


async def test_a_failed_answer_is_counted_under_its_code(ollama_emulator):
    before = sample("chat_llm_stream_errors_total", code="INVALID_MODEL")

    events = await run(model_for(ollama_emulator, model="no-such-model"))

    assert assert_well_formed(events).code == stream_errors.INVALID_MODEL
    assert sample("chat_llm_stream_errors_total", code="INVALID_MODEL") == before + 1
