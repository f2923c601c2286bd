// The fake gateway the client-library tests drive (test_client_library.py). It is the body
// of an async function: the test's scenario follows it.
//   server.on[event] = (data, frame, ws) => ackData | {error: {...}} | undefined (no reply)
//   server.ws.push(frame) sends a server frame; server.ws.drop(code) cuts the connection.
const { ChatClient, ChatError, tokenExpiry } = await import("/static/js/chat-client.js");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const until = async (test, ms = 3000) => {
  const end = Date.now() + ms;
  while (!test()) {
    if (Date.now() > end) throw new Error(`timed out: ${test}`);
    await sleep(5);
  }
};
const server = { sockets: [], received: [], on: {}, silent: new Set() };

class FakeSocket {
  constructor(url) {
    this.url = url;
    server.sockets.push(this);
    server.ws = this;
    const hello = { userId: 7, username: "u", connectionId: "c", serverTime: "" };
    setTimeout(() => this.push({ event: "connection:success", data: hello }), 0);
  }

  send(text) {
    const frame = JSON.parse(text);
    server.received.push(frame);
    if (server.silent.has(frame.event)) return;
    const handler = server.on[frame.event];
    const result = handler ? handler(frame.data, frame, this) : {};
    if (result === undefined) return;
    const reply =
      result && result.error
        ? { event: "error", ref: frame.ref, data: result.error }
        : { event: "ack", ref: frame.ref, data: result };
    setTimeout(() => this.push(reply), 0);
  }

  push(frame) {
    if (!this.closed) this.onmessage?.({ data: JSON.stringify(frame) });
  }

  drop(code = 1006) {
    this.closed = true;
    this.onclose?.({ code, reason: "", wasClean: false });
  }

  close(code = 1000) {
    if (this.closed) return;
    this.closed = true;
    setTimeout(() => this.onclose?.({ code, reason: "", wasClean: true }), 0);
  }
}

const sent = (event) => server.received.filter((frame) => frame.event === event);
const joined = (lastSeq, missed = [], hasMore = false, activeStreams = []) => ({
  lastSeq,
  missed,
  hasMore,
  activeStreams,
});
const newMessage = (seq) => ({
  event: "message:new",
  seq,
  data: { message: { id: `m${seq}`, sessionId: "S", seq, content: `c${seq}` } },
});
const echo = (data) => ({ id: "m1", seq: 1, clientId: data.clientId, content: data.content });
const make = (options = {}) =>
  new ChatClient({
    url: "ws://fake/ws/chat/",
    WebSocket: FakeSocket,
    backoff: { initialMs: 10, maxMs: 80 },
    pingIntervalMs: 0,
    ...options,
  });
