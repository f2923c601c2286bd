"""``static/js/chat-client.js`` and ``static/js/markdown.js`` as units, run in Chromium.

The client library is driven against a scripted fake WebSocket so that what is hard to
provoke on a real server (a lost frame, a dropped connection mid-send, a token about to
expire) happens on cue. The modules are imported from the running server, as pages do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

HARNESS = (Path(__file__).parent / "harness.js").read_text()


@pytest.fixture
def js(web, browser):
    """Run a scenario (the body of an async function, after the harness) in a page of the
    server's origin; returns what it returns, through JSON."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{web.worker(0).url}/login/")

    def run(body: str):
        return page.evaluate(f"async () => {{ {HARNESS}\n{body} }}")

    yield run
    context.close()
    assert errors == []


def test_requests_resolve_with_the_ack_and_reject_with_the_error_data(js):
    result = js("""
        server.on['ping'] = () => ({ serverTime: 'now' });
        server.on['message:edit'] = () => ({ error: { code: 'FORBIDDEN', message: 'Not yours.' } });
        const client = make();
        await client.connect();
        const pong = await client.request('ping');
        let refused;
        try { await client.edit('m1', 'x'); } catch (e) { refused = e; }
        return { pong, name: refused.name, code: refused.code, message: refused.message,
                 refs: server.received.map((f) => f.ref), isError: refused instanceof ChatError };
    """)
    assert result == {
        "pong": {"serverTime": "now"},
        "name": "ChatError",
        "code": "FORBIDDEN",
        "message": "Not yours.",
        "refs": [1, 2],
        "isError": True,
    }


def test_durable_frames_apply_in_seq_order_and_a_gap_is_filled_by_rejoining(js):
    result = js("""
        const joins = [];
        server.on['session:join'] = (data) => {
          joins.push(data.lastSeq ?? null);
          if (data.lastSeq === undefined) return joined(5);
          if (data.lastSeq === 6) return joined(9, [newMessage(7)], true);
          return joined(8, [newMessage(8)]);
        };
        const client = make();
        const seen = [];
        client.on('message:new', (data, frame) => seen.push(frame.seq));
        await client.connect();
        await client.joinSession('S');
        server.ws.push(newMessage(5));      // already known: dropped
        server.ws.push(newMessage(6));      // next: applied
        server.ws.push(newMessage(9));      // a gap: held, 7 and 8 fetched first
        await until(() => seen.length === 4);
        server.ws.push(newMessage(9));      // a repeat: dropped
        server.ws.push(newMessage(10));
        await until(() => seen.length === 5);
        return { seen, joins, lastSeq: client.lastSeq('S') };
    """)
    assert result == {"seen": [6, 7, 8, 9, 10], "joins": [None, 6, 7], "lastSeq": 10}


def test_a_reconnect_backs_off_rejoins_from_last_seq_and_resends_the_outbox(js):
    result = js("""
        const joins = [];
        let sends = 0;
        server.on['session:join'] = (data) => {
          joins.push(data.lastSeq ?? null);
          return data.lastSeq === undefined ? joined(3) : joined(4, [newMessage(4)]);
        };
        server.on['message:send'] = (data) => {
          sends += 1;
          if (sends === 1) { setTimeout(() => server.ws.drop(), 5); return undefined; }  // no ack
          return { id: 'm5', seq: 5, clientId: data.clientId, content: data.content };
        };
        const client = make();
        const delays = [];
        const seen = [];
        client.on('reconnecting', (info) => delays.push(info.delayMs));
        client.on('message:new', (data, frame) => seen.push(frame.seq));
        await client.connect();
        await client.joinSession('S');
        const message = await client.send('S', 'hello');
        const clientIds = sent('message:send').map((f) => f.data.clientId);
        return { message, joins, seen, sockets: server.sockets.length, clientIds,
                 sameId: clientIds[0] === clientIds[1] && clientIds[0] === message.clientId,
                 outbox: client.outbox.length, delayOk: delays[0] >= 5 && delays[0] <= 10 };
    """)
    assert result["joins"] == [None, 3]
    assert result["seen"] == [4]
    assert result["sockets"] == 2
    assert len(result["clientIds"]) == 2 and result["sameId"] is True
    assert result["message"]["content"] == "hello" and result["outbox"] == 0
    assert result["delayOk"] is True


def test_backoff_grows_with_jitter_up_to_its_ceiling(js):
    delays = js("""
        const client = make({ backoff: { initialMs: 100, maxMs: 800 } });
        const delays = [];
        client.on('reconnecting', (info) => delays.push(info.delayMs));
        client._scheduleReconnect = client._scheduleReconnect.bind(client);
        for (let i = 0; i < 6; i += 1) { client._scheduleReconnect(); }
        client.close();
        return delays;
    """)
    ceilings = [100, 200, 400, 800, 800, 800]
    assert len(delays) == 6
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling


def test_an_outbox_survives_a_page_reload_through_storage(js):
    result = js("""
        const storage = new Map();
        const store = {
          getItem: (k) => storage.get(k) ?? null,
          setItem: (k, v) => storage.set(k, v),
        };
        server.silent.add('message:send');
        const first = make({ storage: store });
        await first.connect();
        first.send('S', 'written before the reload');
        await until(() => sent('message:send').length === 1);
        first.close();
        server.silent.delete('message:send');
        server.on['message:send'] = echo;
        const second = make({ storage: store });
        const pending = second.outbox.map((e) => e.content);
        await second.connect();
        await until(() => second.outbox.length === 0);
        const ids = sent('message:send').map((f) => f.data.clientId);
        const stored = JSON.parse(storage.get('chat-client:outbox'));
        return { pending, resentSameId: ids[0] === ids[1], stored };
    """)
    assert result == {"pending": ["written before the reload"], "resentSameId": True, "stored": []}


def test_a_refused_message_leaves_the_outbox_with_the_reason(js):
    result = js("""
        const refusal = { code: 'CONTENT_REJECTED', message: 'Not allowed.' };
        server.on['message:send'] = () => ({ error: refusal });
        const client = make();
        const failed = [];
        client.on('outbox:failed', ({ error }) => failed.push(error.code));
        await client.connect();
        let code;
        try { await client.send('S', 'bad words'); } catch (e) { code = e.code; }
        return { code, failed, outbox: client.outbox.length };
    """)
    assert result == {"code": "CONTENT_REJECTED", "failed": ["CONTENT_REJECTED"], "outbox": 0}


def test_stream_chunks_continue_from_the_join_snapshot_once_each(js):
    result = js("""
        const snapshot = { streamId: 'T', messageId: 'A', content: 'Hello wor', index: 2 };
        server.on['session:join'] = () => joined(0, [], false, [snapshot]);
        const client = make();
        const texts = [];
        client.on('stream:update', (s) => texts.push(s.text));
        await client.connect();
        const ids = { streamId: 'T', sessionId: 'S', messageId: 'A' };
        const chunk = (index, delta) => ({ event: 'stream:chunk',
          data: { ...ids, index, delta, tokens: index + 1, isComplete: false } });
        server.ws.push(chunk(3, 'ld'));     // arrives before the join's reply: kept
        await client.joinSession('S');
        server.ws.push(chunk(1, 'lo'));     // in the snapshot: dropped
        server.ws.push(chunk(2, ' wor'));   // in the snapshot: dropped
        server.ws.push(chunk(3, 'ld'));     // seen: dropped
        server.ws.push(chunk(4, '!'));
        const bob = { id: 2, username: 'bob' };
        server.ws.push({ event: 'stream:stopped',
          data: { ...ids, content: 'Hello world!', tokens: 5, stoppedBy: bob } });
        const stream = client.streams.get('T');
        return { texts, text: stream.text, status: stream.status, by: stream.stoppedBy.username };
    """)
    assert result["texts"][-1] == "Hello world!"
    assert "Hello world" in result["texts"] and result["texts"].count("Hello world!") == 2
    assert result["text"] == "Hello world!" and result["status"] == "stopped"
    assert result["by"] == "bob"


def test_auth_refresh_is_sent_before_the_token_expires(js):
    result = js("""
        const token = (exp) => 'x.' + btoa(JSON.stringify({ exp })).replace(/=+$/, '') + '.y';
        const soon = Math.floor(Date.now() / 1000) + 31;   // inside the 30 s margin in 1 s
        let issued = 0;
        const getToken = async () => { issued += 1; return token(soon + 300); };
        const client = make({ token: token(soon), getToken });
        const expiry = (t) => new Date(tokenExpiry(t) * 1000).toISOString();
        server.on['auth:refresh'] = (d) => ({ expiresAt: expiry(d.token) });
        await client.connect();
        await until(() => sent('auth:refresh').length === 1, 4000);
        const refreshedTo = tokenExpiry(sent('auth:refresh')[0].data.token) - soon;
        return { issued, url: server.sockets[0].url.includes('token='), refreshedTo };
    """)
    assert result == {"issued": 1, "url": True, "refreshedTo": 300}


def test_a_rejected_session_cookie_stops_reconnecting(js):
    result = js("""
        const client = make();
        const states = [];
        client.on('state', (s) => states.push(s));
        server.userId = null;
        const FakeRefusing = class extends FakeSocket {
          constructor(url) { super(url); setTimeout(() => this.drop(4401), 1); }
          push() {}
        };
        client.WebSocketImpl = FakeRefusing;
        let code;
        try { await client.connect(); } catch (e) { code = e.code; }
        await sleep(100);
        return { code, sockets: server.sockets.length, last: states[states.length - 1] };
    """)
    assert result == {"code": "UNAUTHORIZED", "sockets": 1, "last": "closed"}


# --- markdown.js --------------------------------------------------------------------------

MARKDOWN_CASES = {
    "plain **bold** and *it* and _it_ and `x<y`": (
        "<p>plain <strong>bold</strong> and <em>it</em> and <em>it</em> and <code>x&lt;y</code></p>"
    ),
    "line one\nline two\n\nnext paragraph": "<p>line one<br>line two</p><p>next paragraph</p>",
    "- a\n- **b**\n\n1. one\n2. two": (
        "<ul><li>a</li><li><strong>b</strong></li></ul><ol><li>one</li><li>two</li></ol>"
    ),
    "```js\nif (a < b) { alert(1) }\n```": (
        '<pre><code data-lang="js">if (a &lt; b) { alert(1) }</code></pre>'
    ),
    "see [docs](https://example.com/a?b=1&c=2)": (
        '<p>see <a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer nofollow"'
        ' target="_blank">docs</a></p>'
    ),
    "go to https://example.com/x.": (
        '<p>go to <a href="https://example.com/x" rel="noopener noreferrer nofollow"'
        ' target="_blank">https://example.com/x</a>.</p>'
    ),
    "[bad](javascript:alert(1)) [data](data:text/html,x)": (
        "<p>[bad](javascript:alert(1)) [data](data:text/html,x)</p>"
    ),
    "<img src=x onerror=alert(1)><script>alert(2)</script>": (
        "<p>&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(2)&lt;/script&gt;</p>"
    ),
    "snake_case_name and 2*3*4": "<p>snake_case_name and 2*3*4</p>",
    "### Steps": "<h5>Steps</h5>",
    "# Title\n## Part *one*\n#### Deep": "<h3>Title</h3><h4>Part <em>one</em></h4><h6>Deep</h6>",
    "| Step | Who |\n|:-----|----:|\n| tag `v2` | bob |\n| a \\| b | <b> |": (
        '<table><thead><tr><th class="align-left">Step</th><th class="align-right">Who</th></tr>'
        '</thead><tbody><tr><td class="align-left">tag <code>v2</code></td>'
        '<td class="align-right">bob</td></tr><tr><td class="align-left">a | b</td>'
        '<td class="align-right">&lt;b&gt;</td></tr></tbody></table>'
    ),
    "a | b\nnot a table": "<p>a | b<br>not a table</p>",
    "\\*not italic\\*": "<p>*not italic*</p>",
    "```\nunclosed block while streaming": "<pre><code>unclosed block while streaming</code></pre>",
}


def test_markdown_renders_a_fixed_safe_set_of_elements(js):
    rendered = js(f"""
        const {{ renderMarkdown }} = await import('/static/js/markdown.js');
        const out = {{}};
        for (const text of {json.dumps(list(MARKDOWN_CASES))}) {{
          const box = document.createElement('div');
          box.append(renderMarkdown(text));
          out[text] = box.innerHTML;
        }}
        return out;
    """)
    for text, expected in MARKDOWN_CASES.items():
        assert rendered[text] == expected, text


def test_markdown_never_makes_other_elements_or_attributes(js):
    result = js("""
        const { renderMarkdown } = await import('/static/js/markdown.js');
        const allowed = new Set(['P', 'BR', 'STRONG', 'EM', 'CODE', 'PRE', 'A', 'UL', 'OL', 'LI',
          'H3', 'H4', 'H5', 'H6', 'TABLE', 'THEAD', 'TBODY', 'TR', 'TH', 'TD']);
        const attributes = { A: ['href', 'rel', 'target'], CODE: ['data-lang'], OL: ['start'],
          TH: ['class'], TD: ['class'] };
        const pieces = ['<', '>', '"', "'", '&', '*', '_', '`', '```', '[', ']', '(', ')',
          'javascript:', 'https://a.b/', 'on', '=', '\\n', ' ', '- ', '1. ', '#', '\\\\', 'x',
          '|', '---', ':', '\\n|-|-|\\n', '# '];
        let seed = 12345;
        const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
        const bad = [];
        for (let n = 0; n < 3000; n += 1) {
          let text = '';
          for (let i = 0; i < 20; i += 1) text += pieces[Math.floor(random() * pieces.length)];
          const box = document.createElement('div');
          box.append(renderMarkdown(text));
          for (const el of box.querySelectorAll('*')) {
            const attrs = [...el.attributes].map((a) => a.name);
            const okAttrs = attributes[el.tagName] || [];
            const badHref = el.tagName === 'A' && !/^https?:/.test(el.getAttribute('href'));
            const badClass = el.hasAttribute('class')
              && !/^align-(left|center|right)$/.test(el.className);
            if (!allowed.has(el.tagName) || attrs.some((a) => !okAttrs.includes(a)) || badHref
                || badClass) {
              bad.push(text);
            }
          }
        }
        return bad.slice(0, 5);
    """)
    assert result == []


def test_plain_text_puts_each_block_on_a_line_of_its_own(js):
    result = js("""
        const { plainText } = await import('/static/js/markdown.js');
        return [
          plainText('Checklist:\\n- tests green\\n- changelog'),
          plainText('# Plan\\nship **it**\\n\\n| a | b |\\n|---|---|\\n| 1 | 2 |'),
        ];
    """)
    assert result == ["Checklist:\ntests green\nchangelog", "Plan\nship it\na b\n1 2"]


def load_prism(js_body: str) -> str:
    """A scenario run after the page has loaded the vendored Prism as the room page does."""
    return (
        """
        await new Promise((resolve, reject) => {
          const script = document.createElement('script');
          script.src = '/static/vendor/prism/prism.min.js';
          script.dataset.manual = '';
          script.onload = resolve;
          script.onerror = reject;
          document.head.append(script);
        });
        const { renderMarkdown } = await import('/static/js/markdown.js');
        const { enhanceCodeBlocks } = await import('/static/js/code-blocks.js');
        const render = (text) => {
          const box = document.createElement('div');
          box.append(enhanceCodeBlocks(renderMarkdown(text)));
          document.body.append(box);
          return box;
        };
        """
        + js_body
    )


def test_code_blocks_are_highlighted_by_language_and_stay_text(js):
    result = js(
        load_prism("""
        const source = 'def f(x):\\n    return "<img src=x onerror=alert(1)>"  # done';
        const box = render('```python\\n' + source + '\\n```\\n\\n```\\nplain <b>text</b>\\n```');
        const [python, plain] = box.querySelectorAll('.code-block');
        const kinds = [...python.querySelectorAll('code .token')].map((t) => t.className);
        const tags = new Set([...box.querySelectorAll('code *')].map((el) => el.tagName));
        const attrs = new Set([...box.querySelectorAll('code *')].flatMap(
          (el) => [...el.attributes].map((a) => a.name)));
        return {
          text: python.querySelector('code').textContent,
          lang: python.querySelector('.code-lang').textContent,
          keyword: kinds.includes('token keyword'),
          string: kinds.includes('token string'),
          comment: kinds.includes('token comment'),
          tags: [...tags], attrs: [...attrs],
          images: box.querySelectorAll('img').length,
          plainText: plain.querySelector('code').textContent,
          plainSpans: plain.querySelectorAll('code span').length,
          copyButtons: box.querySelectorAll('button.code-copy').length,
        };
    """)
    )
    assert result == {
        "text": 'def f(x):\n    return "<img src=x onerror=alert(1)>"  # done',
        "lang": "python",
        "keyword": True,
        "string": True,
        "comment": True,
        "tags": ["SPAN"],
        "attrs": ["class"],
        "images": 0,
        "plainText": "plain <b>text</b>",
        "plainSpans": 0,
        "copyButtons": 2,
    }


def test_highlighting_markup_never_builds_it(js):
    result = js(
        load_prism("""
        const box = render('```html\\n<script>alert(1)</script><img src=x onerror=alert(2)>\\n```');
        return {
          text: box.querySelector('code').textContent,
          made: box.querySelectorAll('script, img').length,
          tags: [...new Set([...box.querySelectorAll('code *')].map((el) => el.tagName))],
        };
    """)
    )
    assert result == {
        "text": "<script>alert(1)</script><img src=x onerror=alert(2)>",
        "made": 0,
        "tags": ["SPAN"],
    }
