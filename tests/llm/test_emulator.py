"""The Ollama emulator, exercised over real HTTP by the real clients the platform uses
(langchain-ollama's ChatOllama and ollama-python's AsyncClient).

Besides checking the emulator, these tests pin down how those clients behave on the
failures the stream runner must handle, and which ways of stopping a LangChain stream
close the upstream HTTP connection (the emulator records a ``disconnect`` when they do).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import ollama
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_ollama import ChatOllama

from llm.emulator import EmulatorServer, Script
from llm.emulator.script import count_prompt_tokens, split_tokens

ROOT = Path(__file__).resolve().parents[2]

# Generous: a loaded 2-core machine must not fail these, and a hang still ends.
CLIENT_TIMEOUT = httpx.Timeout(30.0)
DISCONNECT_WITHIN_S = 2.0


def chat_model(server: EmulatorServer, **kwargs) -> ChatOllama:
    kwargs.setdefault("model", "llama3.2")
    kwargs.setdefault("client_kwargs", {"timeout": CLIENT_TIMEOUT})
    return ChatOllama(base_url=server.url, **kwargs)


async def collect(stream) -> list:
    return [chunk async for chunk in stream]


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"sunny in {city}"


# -- streaming and usage ---------------------------------------------------------------


async def test_astream_yields_scripted_deltas_and_usage(ollama_emulator):
    ollama_emulator.configure(tokens=["Hel", "lo", ",", " world"], prompt_eval_count=17)

    chunks = await collect(chat_model(ollama_emulator).astream("hi"))

    assert [c.content for c in chunks if c.content] == ["Hel", "lo", ",", " world"]
    final = [c for c in chunks if c.usage_metadata]
    assert len(final) == 1
    assert final[0].usage_metadata == {"input_tokens": 17, "output_tokens": 4, "total_tokens": 21}
    assert final[0].response_metadata["done_reason"] == "stop"
    assert final[0].response_metadata["model_name"] == "llama3.2"
    (request,) = ollama_emulator.requests()
    assert request["path"] == "/api/chat"
    assert request["stream"] is True
    assert [(m["role"], m["content"]) for m in request["messages"]] == [("user", "hi")]
    complete = await ollama_emulator.await_event("complete", id=request["id"])
    assert complete["tokens_sent"] == 4
    assert complete["content"] == "Hello, world"


async def test_default_reply_echoes_the_last_user_message(ollama_emulator):
    messages = [
        SystemMessage("be brief"),
        HumanMessage("first question"),
        AIMessage("first answer"),
        HumanMessage("tell me   a joke"),
    ]

    chunks = await collect(chat_model(ollama_emulator).astream(messages))

    assert [c.content for c in chunks if c.content] == ["Echo:", " tell", " me", " a", " joke"]
    (final,) = [c for c in chunks if c.usage_metadata]
    sent = ollama_emulator.requests()[0]["messages"]
    assert final.usage_metadata["input_tokens"] == count_prompt_tokens(sent)
    assert final.usage_metadata["output_tokens"] == 5


async def test_ollama_client_sees_ollama_stream_shapes(ollama_emulator):
    ollama_emulator.configure(reply="one two three")
    async with ollama.AsyncClient(host=ollama_emulator.url, timeout=CLIENT_TIMEOUT) as client:
        parts = [
            part
            async for part in await client.chat(
                model="llama3.2", messages=[{"role": "user", "content": "x"}], stream=True
            )
        ]

    *deltas, last = parts
    assert [p.message.content for p in deltas] == ["one", " two", " three"]
    assert all(p.done is False and p.message.role == "assistant" for p in deltas)
    assert last.done is True
    assert last.done_reason == "stop"
    assert last.message.content == ""
    assert last.eval_count == 3
    for name in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert getattr(last, name) > 0
    assert last.created_at.endswith("Z")


async def test_delay_ranges_draw_each_pause_within_their_bounds(ollama_emulator):
    ollama_emulator.configure(
        num_tokens=12, first_delay_ms=150, first_delay_max_ms=300, delay_ms=20, delay_max_ms=60
    )
    arrivals = []
    async with ollama.AsyncClient(host=ollama_emulator.url, timeout=CLIENT_TIMEOUT) as client:
        started = time.monotonic()
        async for part in await client.chat(
            model="llama3.2", messages=[{"role": "user", "content": "x"}], stream=True
        ):
            if not part.done:
                arrivals.append(time.monotonic())

    assert len(arrivals) == 12
    assert arrivals[0] - started >= 0.15
    # Chunks may reach the client two at a time, so the pauses are checked in sum: the
    # first-token delay and 11 pauses of at least their lower bounds.
    assert arrivals[-1] - started >= 0.15 + 11 * 0.02


def test_delay_ranges_vary_the_pauses_between_bounds():
    script = Script(first_delay_ms=600, first_delay_max_ms=3000, delay_ms=30, delay_max_ms=80)
    firsts = [script.token_pause_ms(0) for _ in range(200)]
    betweens = [script.token_pause_ms(k) for k in range(1, 201)]

    assert all(600 <= ms <= 3000 for ms in firsts)
    assert all(30 <= ms <= 80 for ms in betweens)
    assert max(firsts) - min(firsts) > 1000
    assert max(betweens) - min(betweens) > 25
    fixed = Script(first_delay_ms=5, delay_ms=7)
    assert {fixed.token_pause_ms(0), fixed.token_pause_ms(3)} == {5, 7}


async def test_num_tokens_repeats_the_reply_to_length(ollama_emulator):
    ollama_emulator.configure(reply="ab cd", num_tokens=5)

    chunks = await collect(chat_model(ollama_emulator).astream("x"))

    assert "".join(c.content for c in chunks) == "ab cd ab cd ab"


# -- non-streaming -----------------------------------------------------------------------


async def test_ainvoke_without_streaming(ollama_emulator):
    message = await chat_model(ollama_emulator).ainvoke("hello there", stream=False)

    assert message.content == "Echo: hello there"
    assert message.usage_metadata["output_tokens"] == 3
    assert message.response_metadata["done_reason"] == "stop"
    (request,) = ollama_emulator.requests()
    assert request["stream"] is False


async def test_ollama_client_non_streaming_chat(ollama_emulator):
    async with ollama.AsyncClient(host=ollama_emulator.url, timeout=CLIENT_TIMEOUT) as client:
        response = await client.chat(
            model="llama3.2", messages=[{"role": "user", "content": "hi you"}], stream=False
        )

    assert response.done is True
    assert response.message.content == "Echo: hi you"
    assert response.eval_count == 3


@pytest.mark.parametrize(("failure", "status"), [("http_503", 503), ("error_line", 500)])
async def test_non_streaming_failures_are_http_errors(ollama_emulator, failure, status):
    ollama_emulator.configure(failure=failure)
    with pytest.raises(ollama.ResponseError) as caught:
        await chat_model(ollama_emulator).ainvoke("x", stream=False)
    assert caught.value.status_code == status


# -- tools -------------------------------------------------------------------------------


async def test_bound_tool_gets_a_tool_call_then_an_answer(ollama_emulator):
    ollama_emulator.configure(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    model = chat_model(ollama_emulator).bind_tools([get_weather])
    history = [HumanMessage("weather in Paris?")]

    first = await model.ainvoke(history)

    assert first.content == ""
    assert [(c["name"], c["args"]) for c in first.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    offered = ollama_emulator.requests()[0]["tools"]
    assert [t["function"]["name"] for t in offered] == ["get_weather"]

    call = first.tool_calls[0]
    result = get_weather.invoke(call["args"])
    second = await model.ainvoke([*history, first, ToolMessage(result, tool_call_id=call["id"])])

    assert second.content == "Tool result: sunny in Paris"
    assert second.tool_calls == []
    follow_up = ollama_emulator.requests()[1]["messages"]
    assert [m["role"] for m in follow_up] == ["user", "assistant", "tool"]
    assert follow_up[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert follow_up[2]["content"] == "sunny in Paris"


async def test_streamed_tool_call_arrives_in_a_chunk(ollama_emulator):
    ollama_emulator.configure(tool_calls=[{"name": "get_weather", "args": {"city": "Oslo"}}])
    model = chat_model(ollama_emulator).bind_tools([get_weather])

    chunks = await collect(model.astream("weather in Oslo?"))

    calls = [call for chunk in chunks for call in chunk.tool_calls]
    assert [(c["name"], c["args"]) for c in calls] == [("get_weather", {"city": "Oslo"})]
    assert next(c for c in chunks if c.usage_metadata).response_metadata["done_reason"] == "stop"


async def test_no_tool_call_when_the_request_offers_no_tools(ollama_emulator):
    ollama_emulator.configure(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}])

    message = await chat_model(ollama_emulator).ainvoke("plain question")

    assert message.tool_calls == []
    assert message.content == "Echo: plain question"


# -- options -----------------------------------------------------------------------------


async def test_num_predict_stops_with_done_reason_length(ollama_emulator):
    ollama_emulator.configure(num_tokens=10)

    chunks = await collect(chat_model(ollama_emulator, num_predict=3).astream("x"))

    assert len([c for c in chunks if c.content]) == 3
    (final,) = [c for c in chunks if c.usage_metadata]
    assert final.response_metadata["done_reason"] == "length"
    assert final.usage_metadata["output_tokens"] == 3
    assert ollama_emulator.requests()[0]["options"]["num_predict"] == 3


async def test_stop_sequence_ends_the_answer(ollama_emulator):
    ollama_emulator.configure(reply="hello big world again")

    message = await chat_model(ollama_emulator, stop=["world"]).ainvoke("x")

    assert message.content == "hello big "
    assert message.response_metadata["done_reason"] == "stop"


# -- errors ------------------------------------------------------------------------------


async def test_unknown_model_is_a_404_response_error(ollama_emulator):
    model = chat_model(ollama_emulator, model="nope")

    with pytest.raises(ollama.ResponseError) as caught:
        await collect(model.astream("x"))

    assert caught.value.status_code == 404
    assert caught.value.error == 'model "nope" not found, try pulling it first'
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        raw = await client.post(
            f"{ollama_emulator.url}/api/chat", json={"model": "nope", "messages": []}
        )
    assert raw.status_code == 404
    assert raw.json() == {"error": 'model "nope" not found, try pulling it first'}


async def test_a_tag_suffix_names_the_same_model(ollama_emulator):
    message = await chat_model(ollama_emulator, model="llama3.2:latest").ainvoke("tagged")
    assert message.content == "Echo: tagged"


async def test_full_queue_is_a_503_before_any_chunk(ollama_emulator):
    ollama_emulator.configure(failure="http_503")
    received = []

    with pytest.raises(ollama.ResponseError) as caught:
        async for chunk in chat_model(ollama_emulator).astream("x"):
            received.append(chunk)

    assert caught.value.status_code == 503
    assert "server busy" in caught.value.error
    assert received == []


async def test_error_line_raises_mid_stream(ollama_emulator):
    ollama_emulator.configure(tokens=["a", "b", "c", "d"], failure="error_line", fail_after=2)
    received = []

    with pytest.raises(ollama.ResponseError) as caught:
        async for chunk in chat_model(ollama_emulator).astream("x"):
            received.append(chunk.content)

    assert received == ["a", "b"]
    assert "unexpected EOF" in caught.value.error
    # A mid-stream error line carries no HTTP status: the 200 was sent long before.
    assert caught.value.status_code == -1


async def test_cut_connection_raises_a_protocol_error(ollama_emulator):
    ollama_emulator.configure(tokens=["a", "b", "c"], failure="cut", fail_after=1)
    received = []

    with pytest.raises(httpx.RemoteProtocolError):
        async for chunk in chat_model(ollama_emulator).astream("x"):
            received.append(chunk.content)

    assert received == ["a"]


async def test_missing_done_line_ends_the_stream_silently(ollama_emulator):
    """Neither client complains when the done line never comes: the caller must notice
    that no chunk carried done_reason / usage."""
    ollama_emulator.configure(tokens=["a", "b", "c"], failure="no_done")

    chunks = await collect(chat_model(ollama_emulator).astream("x"))

    assert "".join(c.content for c in chunks) == "abc"
    assert not [c for c in chunks if c.usage_metadata]
    assert not [c for c in chunks if "done_reason" in c.response_metadata]
    # The emulator logs the failure after its last write, which the client may have read
    # before the log entry exists: wait for it rather than read the log at once.
    assert (await ollama_emulator.await_event("failure"))["mode"] == "no_done"


async def test_stall_needs_a_client_read_timeout(ollama_emulator):
    """ollama-python's default timeout is None: without a read timeout this would hang."""
    ollama_emulator.configure(tokens=["a", "b", "c"], failure="stall", fail_after=1)
    model = chat_model(ollama_emulator, client_kwargs={"timeout": httpx.Timeout(30.0, read=0.5)})
    received = []

    with pytest.raises(httpx.ReadTimeout):
        async for chunk in model.astream("x"):
            received.append(chunk.content)

    assert received == ["a"]
    # Timing out closed the connection: the emulator saw the client go.
    gone = await ollama_emulator.await_event("disconnect", within=DISCONNECT_WITHIN_S)
    assert gone["tokens_sent"] == 1


async def test_read_timeout_also_covers_the_wait_for_the_first_token(ollama_emulator):
    """Ollama sends the response headers with the first chunk, so the read timeout must
    allow for model loading and prompt evaluation, not only the gaps between tokens."""
    ollama_emulator.configure(first_delay_ms=5000)
    model = chat_model(ollama_emulator, client_kwargs={"timeout": httpx.Timeout(30.0, read=0.5)})

    with pytest.raises(httpx.ReadTimeout):
        await collect(model.astream("x"))

    gone = await ollama_emulator.await_event("disconnect", within=DISCONNECT_WITHIN_S)
    assert gone["tokens_sent"] == 0


# -- stopping a stream closes the upstream connection ------------------------------------


async def _start_slow_stream(
    server: EmulatorServer, consume_into: list, started: asyncio.Event, model=None
):
    """Consume a long, slow stream in a task; ``started`` fires after the first 3 deltas."""
    server.configure(num_tokens=500, delay_ms=20)
    model = model or chat_model(server)

    async def consume():
        async for chunk in model.astream("go on"):
            consume_into.append(chunk.content)
            if len(consume_into) >= 3:
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), timeout=30)
    return model, task


async def _assert_disconnect_soon(server: EmulatorServer, since: float) -> dict:
    gone = await server.await_event("disconnect", within=DISCONNECT_WITHIN_S)
    assert gone["at"] - since < DISCONNECT_WITHIN_S
    assert 3 <= gone["tokens_sent"] < 500
    assert server.events("complete") == []
    return gone


async def test_cancelling_the_astream_consumer_closes_upstream(ollama_emulator):
    received: list = []
    _, task = await _start_slow_stream(ollama_emulator, received, asyncio.Event())

    stopped_at = time.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await _assert_disconnect_soon(ollama_emulator, stopped_at)


async def test_cancelling_ainvoke_closes_upstream(ollama_emulator):
    ollama_emulator.configure(num_tokens=500, delay_ms=20)
    task = asyncio.create_task(chat_model(ollama_emulator).ainvoke("go on"))
    await ollama_emulator.await_event("request", within=30)
    await asyncio.sleep(0.2)

    stopped_at = time.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    gone = await ollama_emulator.await_event("disconnect", within=DISCONNECT_WITHIN_S)
    assert gone["at"] - stopped_at < DISCONNECT_WITHIN_S


async def test_acloseing_the_astream_generator_closes_upstream(ollama_emulator):
    ollama_emulator.configure(num_tokens=500, delay_ms=20)
    received = []

    async with contextlib.aclosing(chat_model(ollama_emulator).astream("go on")) as stream:
        async for chunk in stream:
            received.append(chunk.content)
            if len(received) == 3:
                break
        stopped_at = time.time()

    await _assert_disconnect_soon(ollama_emulator, stopped_at)


async def test_closing_the_http_transport_we_gave_it_closes_upstream(ollama_emulator):
    """Closing the httpx transport ChatOllama's async client was given
    (``async_client_kwargs``) also ends the stream, but the consumer sees a transport error
    and the ChatOllama instance is unusable afterwards."""
    received: list = []
    transport = httpx.AsyncHTTPTransport()
    model = chat_model(ollama_emulator, async_client_kwargs={"transport": transport})
    _, task = await _start_slow_stream(ollama_emulator, received, asyncio.Event(), model=model)

    stopped_at = time.time()
    await transport.aclose()

    with pytest.raises(httpx.TransportError):
        await asyncio.wait_for(task, timeout=30)
    await _assert_disconnect_soon(ollama_emulator, stopped_at)


# -- models, version, control ------------------------------------------------------------


async def test_list_show_and_version(ollama_emulator):
    async with ollama.AsyncClient(host=ollama_emulator.url, timeout=CLIENT_TIMEOUT) as client:
        listed = await client.list()
        shown = await client.show("llama3.2")
        with pytest.raises(ollama.ResponseError) as caught:
            await client.show("nope")

    assert [m.model for m in listed.models] == [
        "llama3.2:latest",
        "qwen2.5:latest",
        "nomic-embed-text:latest",
    ]
    first = listed.models[0]
    assert first.size > 0
    assert first.digest
    assert first.modified_at is not None
    assert first.details.format == "gguf"
    assert first.details.family == "llama"
    assert "tools" in shown.capabilities
    assert shown.details.family == "llama"
    assert caught.value.status_code == 404

    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        version = await client.get(f"{ollama_emulator.url}/api/version")
        root = await client.get(ollama_emulator.url)
    assert version.json()["version"]
    assert root.text == "Ollama is running"


async def test_a_model_named_with_and_without_its_tag_is_listed_once(ollama_emulator):
    ollama_emulator.configure(models=["llama3.2", "llama3.2:latest", "mistral:7b"])
    async with ollama.AsyncClient(host=ollama_emulator.url, timeout=CLIENT_TIMEOUT) as client:
        listed = await client.list()
    assert [m.model for m in listed.models] == [
        "llama3.2:latest",
        "mistral:7b",
        "nomic-embed-text:latest",
    ]


async def test_configured_models_replace_the_defaults(ollama_emulator):
    ollama_emulator.configure(models=["mistral:7b"])
    async with ollama.AsyncClient(host=ollama_emulator.url, timeout=CLIENT_TIMEOUT) as client:
        listed = await client.list()
    assert [m.model for m in listed.models] == ["mistral:7b", "nomic-embed-text:latest"]

    message = await chat_model(ollama_emulator, model="mistral:7b").ainvoke("hey")
    assert message.content == "Echo: hey"
    with pytest.raises(ollama.ResponseError) as caught:
        await chat_model(ollama_emulator).ainvoke("hey")
    assert caught.value.status_code == 404


def test_validate_model_on_init_uses_the_tags_list(ollama_emulator):
    ChatOllama(base_url=ollama_emulator.url, model="qwen2.5", validate_model_on_init=True)
    with pytest.raises(ValueError, match="not found"):
        ChatOllama(base_url=ollama_emulator.url, model="nope", validate_model_on_init=True)


async def test_generate_endpoint_streams_responses(ollama_emulator):
    async with ollama.AsyncClient(host=ollama_emulator.url, timeout=CLIENT_TIMEOUT) as client:
        parts = [
            part
            async for part in await client.generate(model="llama3.2", prompt="say it", stream=True)
        ]
    assert "".join(p.response for p in parts) == "Echo: say it"
    assert parts[-1].done is True
    assert parts[-1].eval_count == 3


async def test_control_endpoints_script_and_log(ollama_emulator):
    url = ollama_emulator.url
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        scripted = await client.post(f"{url}/_emulator/script", json={"reply": "Remote control"})
        assert scripted.status_code == 200
        assert scripted.json()["reply"] == "Remote control"
        rejected = await client.post(f"{url}/_emulator/script", json={"bogus": 1})
        assert rejected.status_code == 400
        bad_failure = await client.post(f"{url}/_emulator/script", json={"failure": "explode"})
        assert bad_failure.status_code == 400

        message = await chat_model(ollama_emulator).ainvoke("x")
        assert message.content == "Remote control"

        log = (await client.get(f"{url}/_emulator/log")).json()["log"]
        assert [entry["event"] for entry in log] == ["request", "complete"]
        assert log[0]["model"] == "llama3.2"

        reset = await client.post(f"{url}/_emulator/reset")
        assert reset.json()["reply"] is None
        assert (await client.get(f"{url}/_emulator/log")).json() == {"log": []}
        assert ollama_emulator.script == Script()


async def test_reset_drops_log_entries_of_leftover_streams(ollama_emulator):
    ollama_emulator.configure(tokens=["a", "b"], failure="stall", fail_after=1)
    model = chat_model(ollama_emulator, client_kwargs={"timeout": httpx.Timeout(30.0, read=0.5)})
    with pytest.raises(httpx.ReadTimeout):
        async for _ in model.astream("x"):
            # As if this stream were left over from a previous test when the next one began.
            ollama_emulator.reset()

    deadline = time.monotonic() + 30
    while ollama_emulator.app.active:
        assert time.monotonic() < deadline, "the stalled response never ended"
        await asyncio.sleep(0.02)
    assert ollama_emulator.log == []


def test_script_validation():
    with pytest.raises(ValueError):
        Script(failure="explode")
    with pytest.raises(ValueError):
        Script().updated(colour="blue")
    with pytest.raises(ValueError):
        Script(tool_calls=[{"arguments": {}}])
    with pytest.raises(ValueError):
        Script(first_delay_ms=600, first_delay_max_ms=100)
    with pytest.raises(ValueError):
        Script(delay_ms=30, delay_max_ms=10)
    assert split_tokens("Echo: a  b ") == ["Echo:", " a", "  b "]


# -- the management command --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_management_command_serves_until_interrupted():
    port = _free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatproject.settings.test"}
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "ollama_emulator",
            "--port",
            str(port),
            "--delay-ms",
            "0",
            "--models",
            "demo",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()
            try:
                if httpx.get(f"{url}/api/version", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the emulator command did not start"
            time.sleep(0.2)

        reply = ChatOllama(base_url=url, model="demo", client_kwargs={"timeout": 30}).invoke("hi")
        assert reply.content == "Echo: hi"

        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert f"Ollama emulator on http://127.0.0.1:{port}" in stdout
