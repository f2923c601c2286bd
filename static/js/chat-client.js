/**
 * chat-client.js: a dependency-free client for the chat gateway (`/ws/chat/`).
 *
 * What the protocol asks of a client (docs/websocket.md), done once here so the web app and
 * any SPA get it right:
 *
 * - requests by `ref`, each a promise: resolved with the `ack` data, rejected with a
 *   `ChatError` carrying the `error` data ({code, message, retryAfter?, details?});
 * - reconnection with exponential backoff and jitter, then `session:join {lastSeq}` for every
 *   joined session, looping while `hasMore`;
 * - ordering by `seq`: durable frames at or below `lastSeq` are dropped, a jump past
 *   `lastSeq + 1` is a gap that is filled by rejoining before anything later is applied;
 * - an outbox: `send()` gives each message a `clientId` and retries it after a reconnect
 *   until acked (the server answers a repeated clientId with the first message);
 * - `auth:refresh` before the access token expires, when a token getter is given;
 * - LLM streams: chunks applied once each, in index order, continuing from the text a
 *   `session:join` reports in `activeStreams`; where a frame left the whole answer out
 *   (`contentOmitted`, the frame cap), the text is the deltas' (`partial` when a join
 *   snapshot left out the start).
 *
 * - waits it is told to make are said, not silent: a `session:join` refused with
 *   RATE_LIMITED is retried after its `retryAfter` (`session:waiting` meanwhile), and a
 *   connection refused as one too many (error RATE_LIMITED, close 4429) reconnects after its
 *   `retryAfter` (`reconnecting` with `reason: "RATE_LIMITED"`), not sooner.
 *
 * Receipts are watermarks: `markDelivered(id)` / `markSeen(id)` mark that message and every
 * earlier one of its session (acked with the member's `{deliveredSeq, seenSeq}` after the
 * write). Others' moves arrive as `receipts:update {sessionId, readers: [{userId,
 * deliveredSeq, seenSeq}]}`, at most one per session per interval, listing the readers that
 * moved; it is not durable and not queued while offline: a join's `members` carry every
 * member's `lastDeliveredSeq` and `lastSeenSeq`, so a (re)join starts from the truth.
 *
 * Events are callbacks: `client.on("message:new", (data, frame) => ...)`. Besides the
 * server's events: `state`, `connected`, `disconnected`, `reconnecting`, `session:joined`,
 * `session:waiting`, `session:failed`, `gap`,
 * `stream:update`, `outbox`, `outbox:sent`, `outbox:failed`, and `*` (every server frame).
 *
 * Typing and presence come batched (docs/websocket.md): `typing:update {sessionId, started,
 * stopped}` lists who began and who stopped typing since the last one (skip your own user
 * in it), and `presence:changes {changes: [{user, status, lastSeenAt}]}` the members whose
 * presence changed. `typing()` below sends what the server gathers.
 */

const DURABLE = new Set([
  "message:new",
  "message:edited",
  "message:deleted",
  "message:reaction:update",
  "message:pinned",
  "message:unpinned",
  "attachment:index",
]);
const STREAM_EVENTS = new Set([
  "stream:start",
  "stream:chunk",
  "stream:tool",
  "stream:complete",
  "stream:error",
  "stream:stopped",
]);
const FINAL_STREAM = new Set(["completed", "stopped", "failed"]);
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_DEACTIVATED = 4403;
// Too many new connections of this user: the error before it says when to come back.
const CLOSE_RATE_LIMITED = 4429;
// The gateway closes a connection on a frame above 64 KiB; refuse such a frame here instead.
const MAX_FRAME_BYTES = 65536;
const RETRYABLE = new Set(["DISCONNECTED", "TIMEOUT"]);

/** An `error` reply, or a local failure (`DISCONNECTED`, `TIMEOUT`). */
export class ChatError extends Error {
  constructor(data = {}) {
    super(data.message || data.code || "Request failed");
    this.name = "ChatError";
    this.code = data.code || "INTERNAL";
    this.retryAfter = data.retryAfter;
    this.details = data.details;
    this.data = data;
  }
}

/** A random id for `clientId` (crypto.randomUUID needs a secure context; this doesn't). */
export function newClientId() {
  if (globalThis.crypto?.randomUUID && globalThis.isSecureContext) {
    return globalThis.crypto.randomUUID();
  }
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The `exp` claim (epoch seconds) of a JWT, or null; the signature is the server's job. */
export function tokenExpiry(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(part)).exp;
    return typeof exp === "number" ? exp : null;
  } catch {
    return null;
  }
}

function defaultUrl() {
  const { protocol, host } = globalThis.location;
  return `${protocol === "https:" ? "wss" : "ws"}://${host}/ws/chat/`;
}

function sessionIdOf(data) {
  return data?.sessionId || data?.message?.sessionId || null;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class ChatClient {
  /**
   * @param {object} options
   * @param {string} [options.url] the gateway URL (default: this origin's /ws/chat/)
   * @param {string} [options.token] an access JWT; without one the session cookie is used
   * @param {() => Promise<string>|string} [options.getToken] returns a fresh access JWT:
   *   used for every (re)connection and for `auth:refresh` before expiry
   * @param {{initialMs?: number, maxMs?: number, factor?: number}} [options.backoff]
   * @param {number} [options.requestTimeoutMs] how long a request waits for its reply
   * @param {number} [options.pingIntervalMs] keep-alive ping period (0: none)
   * @param {Storage} [options.storage] where the outbox survives a reload (localStorage)
   * @param {string} [options.storageKey]
   * @param {typeof WebSocket} [options.WebSocket] for tests or Node
   */
  constructor(options = {}) {
    this.url = options.url || defaultUrl();
    this.token = options.token || null;
    this.getToken = options.getToken || null;
    this.refreshMarginMs = options.refreshMarginMs ?? 30_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
    this.pingIntervalMs = options.pingIntervalMs ?? 25_000;
    this.backoff = { initialMs: 500, maxMs: 30_000, factor: 2, ...options.backoff };
    this.WebSocketImpl = options.WebSocket || globalThis.WebSocket;
    this.storage = options.storage || null;
    this.storageKey = options.storageKey || "chat-client:outbox";

    this.state = "idle"; // idle | connecting | open | reconnecting | closed
    this.user = null; // {id, username} from connection:success
    this.handlers = new Map();
    this.pending = new Map(); // ref -> {resolve, reject, timer}
    this.nextRef = 1;
    this.sessions = new Map(); // sessionId -> {lastSeq, syncing, held, resyncs}
    this.streams = new Map(); // streamId -> stream tracker (see _stream)
    this.outbox = this._loadOutbox();
    this.waiters = new Map(); // clientId -> {resolve, reject}
    this.typingState = new Map();
    this.ws = null;
    this.attempt = 0;
    this.authFailures = 0;
    this.closedByUser = false;
    this.refusal = null; // the error frame that came before a close, if any
    this.flushing = false;
    this.timers = { reconnect: null, refresh: null, ping: null, flush: null };
    this.waitingForServer = false; // a reconnect the server said to wait for (4429)
    this._onOnline = () => {
      if (this.state === "reconnecting" && !this.waitingForServer) this._reconnectNow();
    };
    globalThis.addEventListener?.("online", this._onOnline);
  }

  // --- events -------------------------------------------------------------------------------

  /** Call `fn(data, frame)` for `event`; returns a function that unsubscribes. */
  on(event, fn) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    this.handlers.get(event)?.delete(fn);
  }

  _emit(event, data, frame) {
    for (const fn of this.handlers.get(event) || []) {
      try {
        fn(data, frame);
      } catch (error) {
        // One broken handler must not stop the others, nor the protocol state machine.
        console.error(`chat-client: a ${event} handler failed`, error);
      }
    }
  }

  _setState(state) {
    if (this.state !== state) {
      this.state = state;
      this._emit("state", state);
    }
  }

  // --- connection ---------------------------------------------------------------------------

  /** Open the connection; resolves with `connection:success` data once connected. */
  connect() {
    this.closedByUser = false;
    if (this.state === "open") return Promise.resolve(this.user);
    const ready = new Promise((resolve, reject) => {
      const offOk = this.on("connected", (data) => {
        offOk();
        offFail();
        resolve(data);
      });
      const offFail = this.on("state", (state) => {
        if (state === "closed") {
          offOk();
          offFail();
          reject(new ChatError(this.closeReason || { code: "DISCONNECTED" }));
        }
      });
    });
    if (this.state === "idle" || this.state === "closed") this._open();
    return ready;
  }

  /** Close for good: no reconnection. Unsent outbox entries stay (and in storage). */
  close() {
    this.closedByUser = true;
    clearTimeout(this.timers.reconnect);
    this._stopTimers();
    globalThis.removeEventListener?.("online", this._onOnline);
    if (this.ws) this.ws.close(1000, "client closed");
    this._setState("closed");
  }

  async _open() {
    this._setState(this.attempt === 0 ? "connecting" : "reconnecting");
    let url = this.url;
    try {
      if (this.getToken && (!this.token || this._tokenExpiresSoon())) {
        this.token = await this.getToken();
      }
    } catch (error) {
      console.warn("chat-client: getting a token failed", error);
      this._scheduleReconnect();
      return;
    }
    if (this.closedByUser) return; // close() came while the token was being fetched
    if (this.token) {
      url += (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(this.token);
    }
    const ws = new this.WebSocketImpl(url);
    this.ws = ws;
    ws.onmessage = (event) => {
      if (this.ws === ws) this._receive(event.data);
    };
    ws.onclose = (event) => {
      if (this.ws === ws) this._closed(event);
    };
  }

  _tokenExpiresSoon() {
    const exp = tokenExpiry(this.token);
    return exp !== null && exp * 1000 - Date.now() < this.refreshMarginMs;
  }

  _closed(event) {
    this.ws = null;
    this._stopTimers();
    const error = new ChatError({ code: "DISCONNECTED", message: "The connection closed." });
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(error);
    }
    this.pending.clear();
    for (const entry of this.outbox) entry.status = "queued";
    for (const session of this.sessions.values()) session.syncing = false;
    const wasOpen = this.state === "open";
    this._emit("disconnected", {
      code: event.code,
      reason: event.reason,
      wasClean: event.wasClean,
    });
    if (this.closedByUser) return this._setState("closed");
    if (event.code === CLOSE_DEACTIVATED) {
      this.closeReason = { code: "FORBIDDEN", message: "This account was deactivated." };
      return this._setState("closed");
    }
    const refusal = this.refusal;
    this.refusal = null;
    if (event.code === CLOSE_RATE_LIMITED) {
      // Sooner would be refused again: come back once the window the server names is over.
      const retryAfter = refusal?.retryAfter || 60;
      return this._scheduleReconnect(retryAfter * 1000 + Math.random() * 1000, {
        reason: "RATE_LIMITED",
        retryAfter,
      });
    }
    if (event.code === CLOSE_UNAUTHORIZED) {
      // An expired token gets a fresh one from getToken; a session cookie that no longer
      // authenticates won't on a retry either, so stop after a second refusal in a row.
      this.token = this.getToken ? null : this.token;
      this.authFailures += wasOpen ? 0 : 1;
      if (this.authFailures >= 2 || (!this.getToken && !wasOpen)) {
        this.closeReason = { code: "UNAUTHORIZED", message: "Log in again." };
        return this._setState("closed");
      }
    }
    this._scheduleReconnect();
  }

  /** Reconnect after the backoff's next delay, or after `delayMs` when the server said when. */
  _scheduleReconnect(delayMs = null, why = {}) {
    const { initialMs, maxMs, factor } = this.backoff;
    const ceiling = Math.min(maxMs, initialMs * factor ** this.attempt);
    // "Equal jitter": at least half the ceiling, so clients that dropped together spread out
    // without any of them hammering the server right away.
    const delay = delayMs ?? ceiling / 2 + Math.random() * (ceiling / 2);
    this.waitingForServer = delayMs !== null;
    this.attempt += 1;
    this._setState("reconnecting");
    this._emit("reconnecting", { attempt: this.attempt, delayMs: Math.round(delay), ...why });
    clearTimeout(this.timers.reconnect);
    this.timers.reconnect = setTimeout(() => this._open(), delay);
  }

  _reconnectNow() {
    clearTimeout(this.timers.reconnect);
    this._open();
  }

  _stopTimers() {
    clearTimeout(this.timers.refresh);
    clearInterval(this.timers.ping);
    clearTimeout(this.timers.flush);
  }

  _connected(data) {
    this.user = { id: data.userId, username: data.username };
    this.attempt = 0;
    this.authFailures = 0;
    // Frames queued for us while offline follow right away: hold them in every session we
    // track until its rejoin has replayed what we missed, so they can't look like gaps.
    for (const session of this.sessions.values()) session.syncing = true;
    this._setState("open");
    this._scheduleRefresh();
    if (this.pingIntervalMs > 0) {
      this.timers.ping = setInterval(() => this._ping(), this.pingIntervalMs);
    }
    this._emit("connected", data);
    const rejoins = [...this.sessions.keys()].map((id) =>
      this._sync(id).catch((error) => {
        if (error.code !== "DISCONNECTED") this._emit("session:failed", { sessionId: id, error });
      }),
    );
    Promise.all(rejoins).then(() => this._flushOutbox());
  }

  async _ping() {
    try {
      await this.request("ping", {}, { timeoutMs: 10_000 });
    } catch (error) {
      // No answer: the connection is dead without the browser knowing. Start over.
      if (error.code === "TIMEOUT" && this.ws) this.ws.close(4000, "ping timeout");
    }
  }

  // --- frames -------------------------------------------------------------------------------

  _receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    const { event, data } = frame;
    if (event === "ack" || event === "error") {
      const waiter = this.pending.get(frame.ref);
      if (waiter) {
        this.pending.delete(frame.ref);
        clearTimeout(waiter.timer);
        if (event === "ack") waiter.resolve(data);
        else waiter.reject(new ChatError(data));
        return;
      }
      if (event === "error") {
        this.refusal = data;
        this._emit("error", data, frame);
      }
      return;
    }
    if (event === "connection:success") {
      this._emit("*", data, frame);
      this._emit(event, data, frame);
      this._connected(data);
      return;
    }
    if (DURABLE.has(event) && typeof frame.seq === "number") {
      this._durable(frame);
      return;
    }
    if (STREAM_EVENTS.has(event)) {
      this._streamEvent(frame);
      return;
    }
    this._dispatch(frame);
  }

  _dispatch(frame) {
    this._emit("*", frame.data, frame);
    this._emit(frame.event, frame.data, frame);
  }

  // --- sessions, seq and gaps ---------------------------------------------------------------

  /**
   * Join a session and keep it in order from here on (and rejoin it after reconnects).
   * With `lastSeq`, the events after it are replayed first (as their usual events).
   * Resolves with the join ack (session, members, presence, lastSeq, activeStreams).
   */
  async joinSession(sessionId, { lastSeq = null } = {}) {
    if (!this.sessions.has(sessionId)) {
      this.sessions.set(sessionId, { lastSeq, syncing: false, held: [], resyncs: 0 });
    }
    if (this.state === "open") return this._sync(sessionId);
    // Not connected yet: the (re)connection joins every followed session; wait for ours.
    return new Promise((resolve, reject) => {
      const offJoined = this.on("session:joined", (ack) => {
        if (ack.sessionId !== sessionId) return;
        offJoined();
        offFailed();
        resolve(ack);
      });
      const offFailed = this.on("session:failed", ({ sessionId: id, error }) => {
        if (id !== sessionId) return;
        offJoined();
        offFailed();
        reject(error);
      });
    });
  }

  /** Stop following a session. */
  async leaveSession(sessionId) {
    this.sessions.delete(sessionId);
    if (this.state === "open") await this.request("session:leave", { sessionId });
  }

  /** The highest seq applied in a session (what a reconnect resumes from). */
  lastSeq(sessionId) {
    return this.sessions.get(sessionId)?.lastSeq ?? null;
  }

  async _sync(sessionId) {
    const session = this.sessions.get(sessionId);
    if (!session) return null;
    session.syncing = true;
    let ack;
    try {
      do {
        const data = { sessionId };
        if (session.lastSeq !== null) data.lastSeq = session.lastSeq;
        ack = await this._join(data);
        // A first join starts from the session's current seq; a rejoin from the frames it
        // replays (they run up to that seq whenever hasMore is false).
        if (session.lastSeq === null) session.lastSeq = ack.lastSeq ?? 0;
        for (const frame of ack.missed || []) this._apply(session, frame);
      } while (ack.hasMore);
    } finally {
      session.syncing = false;
    }
    this._activeStreams(sessionId, ack.activeStreams || []);
    this._emit("session:joined", { sessionId, ...ack });
    this._drainHeld(sessionId, session);
    return ack;
  }

  async _join(data) {
    // session:join is limited per session on one connection (5 a minute; a new connection
    // starts afresh): wait out a RATE_LIMITED and retry, since a rejoin is what keeps the
    // session complete, and say so meanwhile: until then its live events don't come.
    for (let tries = 0; ; tries += 1) {
      try {
        return await this.request("session:join", data);
      } catch (error) {
        if (error.code !== "RATE_LIMITED" || tries >= 5) throw error;
        const retryAfter = error.retryAfter || 1;
        this._emit("session:waiting", { sessionId: data.sessionId, retryAfter });
        await sleep(retryAfter * 1000);
      }
    }
  }

  _durable(frame) {
    const sessionId = sessionIdOf(frame.data);
    const session = this.sessions.get(sessionId);
    if (!session) return this._dispatch(frame); // not followed: nothing to order it against
    if (session.syncing) return void session.held.push(frame);
    if (session.lastSeq !== null && frame.seq > session.lastSeq + 1) {
      session.held.push(frame);
      this._emit("gap", { sessionId, lastSeq: session.lastSeq, seq: frame.seq });
      this._sync(sessionId).catch((error) => console.warn("chat-client: gap fill failed", error));
      return;
    }
    this._apply(session, frame);
  }

  /** Apply a durable frame unless it is already applied. */
  _apply(session, frame) {
    if (session.lastSeq !== null && frame.seq <= session.lastSeq) return;
    session.lastSeq = frame.seq;
    this._dispatch(frame);
  }

  _drainHeld(sessionId, session) {
    const held = session.held.sort((a, b) => a.seq - b.seq);
    session.held = [];
    for (let i = 0; i < held.length; i += 1) {
      const frame = held[i];
      if (frame.seq > session.lastSeq + 1) {
        // Still a hole: the replay didn't reach it. Rejoin again, a few times at most; after
        // that, apply what we have rather than stall the session forever.
        if (session.resyncs < 3) {
          session.resyncs += 1;
          session.held = held.slice(i);
          this._sync(sessionId).catch(() => {});
          return;
        }
        session.lastSeq = frame.seq - 1;
      }
      this._apply(session, frame);
    }
    session.resyncs = 0;
  }

  // --- requests -----------------------------------------------------------------------------

  /** Send `event` with `data`; resolves with the ack's data, rejects with a `ChatError`. */
  request(event, data = {}, { timeoutMs = this.requestTimeoutMs } = {}) {
    if (!this.ws || this.state !== "open") {
      return Promise.reject(new ChatError({ code: "DISCONNECTED", message: "Not connected." }));
    }
    const ref = this.nextRef++;
    const text = JSON.stringify({ event, data, ref });
    if (new TextEncoder().encode(text).length > MAX_FRAME_BYTES) {
      return Promise.reject(
        new ChatError({ code: "VALIDATION_ERROR", message: "This is too large to send." }),
      );
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new ChatError({ code: "TIMEOUT", message: `No reply to ${event}.` }));
      }, timeoutMs);
      this.pending.set(ref, { resolve, reject, timer });
      this.ws.send(text);
    });
  }

  // --- the outbox ---------------------------------------------------------------------------

  /**
   * Send a message through the outbox. Resolves with the stored message once the server
   * acks it, however many reconnects that takes; rejects only when the server refuses it.
   * The returned promise has the message's `clientId`, to show it at once (optimistically).
   */
  send(sessionId, content, { parentMessageId = null, clientId = newClientId() } = {}) {
    const entry = {
      clientId,
      sessionId,
      content,
      parentMessageId,
      createdAt: new Date().toISOString(),
      status: "queued",
    };
    const promise = new Promise((resolve, reject) => {
      this.waiters.set(clientId, { resolve, reject });
    });
    promise.clientId = clientId;
    this.outbox.push(entry);
    this._outboxChanged();
    this._flushOutbox();
    return promise;
  }

  /** Give up on an unsent message (e.g. the user discards it). */
  discard(clientId) {
    this.outbox = this.outbox.filter((entry) => entry.clientId !== clientId);
    this.waiters.delete(clientId);
    this._outboxChanged();
  }

  async _flushOutbox() {
    if (this.flushing || this.state !== "open") return;
    this.flushing = true;
    try {
      // In order, one at a time: messages keep the order they were written in.
      while (this.state === "open") {
        const entry = this.outbox.find((e) => e.status === "queued");
        if (!entry) break;
        entry.status = "sending";
        const data = {
          sessionId: entry.sessionId,
          content: entry.content,
          clientId: entry.clientId,
        };
        if (entry.parentMessageId) data.parentMessageId = entry.parentMessageId;
        try {
          const message = await this.request("message:send", data);
          this._settle(entry, message, null);
        } catch (error) {
          if (RETRYABLE.has(error.code)) {
            entry.status = "queued";
            break; // the reconnect flushes again
          }
          if (error.code === "RATE_LIMITED") {
            entry.status = "queued";
            clearTimeout(this.timers.flush);
            this.timers.flush = setTimeout(
              () => this._flushOutbox(),
              (error.retryAfter || 1) * 1000,
            );
            break;
          }
          this._settle(entry, null, error);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  _settle(entry, message, error) {
    this.outbox = this.outbox.filter((e) => e !== entry);
    this._outboxChanged();
    const waiter = this.waiters.get(entry.clientId);
    this.waiters.delete(entry.clientId);
    if (error) {
      this._emit("outbox:failed", { entry, error });
      waiter?.reject(error);
    } else {
      this._emit("outbox:sent", { entry, message });
      waiter?.resolve(message);
    }
  }

  _outboxChanged() {
    try {
      this.storage?.setItem(this.storageKey, JSON.stringify(this.outbox));
    } catch {
      // Storage full or denied: the outbox still works for this page's lifetime.
    }
    this._emit("outbox", this.outbox.slice());
  }

  _loadOutbox() {
    try {
      const saved = JSON.parse(this.storage?.getItem(this.storageKey) || "[]");
      return Array.isArray(saved) ? saved.map((e) => ({ ...e, status: "queued" })) : [];
    } catch {
      return [];
    }
  }

  // --- conveniences over request() ----------------------------------------------------------

  edit(messageId, content) {
    return this.request("message:edit", { messageId, content });
  }

  delete(messageId) {
    return this.request("message:delete", { messageId });
  }

  react(messageId, emoji) {
    return this.request("message:reaction", { messageId, emoji });
  }

  /** Pin a message (any member); acked with `{sessionId, messageId, pinned, pinnedAt,
   * pinnedBy}`. Pinning a pinned message changes nothing. */
  pin(messageId) {
    return this.request("message:pin", { messageId });
  }

  unpin(messageId) {
    return this.request("message:unpin", { messageId });
  }

  /** Stream a new version of an assistant answer into its message (any member); acked with
   * `{streamId, messageId, version}`. STREAM_LIMIT while a version is being written. */
  regenerate(messageId, { agentId, config } = {}) {
    return this.request("stream:regenerate", { messageId, agentId, config });
  }

  /** Edit a prompt of mine and answer it again (a new version of its answer); acked with
   * `{messageId, answerMessageId, streamId, version}`. */
  resend(messageId, content) {
    return this.request("message:resend", { messageId, content });
  }

  /** Mark the message, and every earlier one of its session, seen (and so delivered). */
  markSeen(messageId) {
    return this.request("message:seen", { messageId });
  }

  /** Mark the message, and every earlier one of its session, delivered: it reached this
   * client but is not in view (tab hidden, scrolled up). */
  markDelivered(messageId) {
    return this.request("message:delivered", { messageId });
  }

  /** Call on every keystroke: sends `typing:start` at most every 3 s, `typing:stop` after
   * 4 s without one (the server would expire it after 6 s anyway). */
  typing(sessionId) {
    const now = Date.now();
    const state = this.typingState.get(sessionId) || { active: false, sentAt: 0, idle: null };
    if (!state.active || now - state.sentAt > 3000) {
      state.active = true;
      state.sentAt = now;
      this.request("typing:start", { sessionId }).catch(() => {});
    }
    clearTimeout(state.idle);
    state.idle = setTimeout(() => this.stopTyping(sessionId), 4000);
    this.typingState.set(sessionId, state);
  }

  stopTyping(sessionId) {
    const state = this.typingState.get(sessionId);
    if (!state?.active) return;
    clearTimeout(state.idle);
    state.active = false;
    this.request("typing:stop", { sessionId }).catch(() => {});
  }

  /** Ask the session's assistant; resolves with {streamId, messageId, userMessageId}. */
  askAssistant(
    sessionId,
    prompt,
    { agentId, parentMessageId, model, temperature, maxTokens } = {},
  ) {
    const data = { sessionId, prompt };
    if (agentId) data.agentId = agentId;
    if (parentMessageId) data.parentMessageId = parentMessageId;
    const config = {};
    if (model) config.model = model;
    if (temperature !== undefined) config.temperature = temperature;
    if (maxTokens !== undefined) config.maxTokens = maxTokens;
    if (Object.keys(config).length) data.config = config;
    return this.request("stream:request", data);
  }

  stopStream(streamId) {
    return this.request("stream:stop", { streamId });
  }

  // --- token refresh ------------------------------------------------------------------------

  _scheduleRefresh() {
    clearTimeout(this.timers.refresh);
    const exp = this.token && tokenExpiry(this.token);
    if (!this.getToken || !exp) return;
    const delay = Math.max(0, exp * 1000 - Date.now() - this.refreshMarginMs);
    this.timers.refresh = setTimeout(() => this._refresh(), delay);
  }

  async _refresh() {
    try {
      const token = await this.getToken();
      await this.request("auth:refresh", { token });
      this.token = token;
      this._scheduleRefresh();
    } catch (error) {
      console.warn("chat-client: auth:refresh failed, retrying", error);
      clearTimeout(this.timers.refresh);
      this.timers.refresh = setTimeout(() => this._refresh(), 5000);
    }
  }

  // --- LLM streams --------------------------------------------------------------------------

  /** The tracker of a stream: {streamId, sessionId, messageId, text, index, status, tools,
   * model, requestedBy, error, stoppedBy}. */
  _stream(data) {
    let stream = this.streams.get(data.streamId);
    if (!stream) {
      stream = {
        streamId: data.streamId,
        sessionId: data.sessionId || null,
        messageId: data.messageId || null,
        base: "", // text of a join snapshot
        partial: false, // the snapshot left its text out (contentOmitted): text lacks the start
        baseIndex: -1, // the snapshot's last chunk index
        chunks: new Map(), // index -> delta, for chunks after the snapshot
        text: "",
        index: -1,
        status: "streaming",
        tools: [],
        model: null,
        requestedBy: null,
        error: null,
        stoppedBy: null,
      };
      this.streams.set(data.streamId, stream);
    }
    stream.sessionId ||= data.sessionId || null;
    stream.messageId ||= data.messageId || null;
    return stream;
  }

  _retext(stream) {
    const later = [...stream.chunks.keys()]
      .filter((i) => i > stream.baseIndex)
      .sort((a, b) => a - b);
    stream.text = stream.base + later.map((i) => stream.chunks.get(i)).join("");
    stream.index = Math.max(stream.baseIndex, later.length ? later[later.length - 1] : -1);
  }

  _streamEvent(frame) {
    const { event, data } = frame;
    const stream = this._stream(data);
    switch (event) {
      case "stream:start":
        stream.model = data.model;
        stream.requestedBy = data.requestedBy;
        stream.agentId = data.agentId;
        stream.version = data.version || 1;
        break;
      case "stream:chunk":
        // Apply each chunk once: one already in the join snapshot, or seen before, is dropped.
        if (data.index <= stream.baseIndex || stream.chunks.has(data.index)) return;
        stream.chunks.set(data.index, data.delta || "");
        this._retext(stream);
        if (data.isComplete && typeof data.content === "string") stream.text = data.content;
        break;
      case "stream:tool":
        stream.tools.push({ name: data.name, args: data.args, result: data.result });
        break;
      case "stream:complete":
        stream.status = "completed";
        stream.text = data.content ?? stream.text;
        break;
      case "stream:stopped":
        stream.status = "stopped";
        stream.text = data.content ?? stream.text;
        stream.stoppedBy = data.stoppedBy || null;
        break;
      case "stream:error":
        stream.status = "failed";
        stream.error = { code: data.code, message: data.message };
        break;
      default:
        break;
    }
    this._dispatch(frame);
    this._emit("stream:update", stream);
    if (FINAL_STREAM.has(stream.status)) this._forgetLater(stream.streamId);
  }

  _activeStreams(sessionId, active) {
    for (const entry of active) {
      const stream = this._stream({ ...entry, sessionId });
      if (FINAL_STREAM.has(stream.status) || entry.index < stream.baseIndex) continue;
      // What stream:start said, for a client that joined after it.
      stream.model ||= entry.model || null;
      stream.requestedBy ||= entry.requestedBy || null;
      stream.base = entry.content || "";
      // The text so far was too large for the join reply: `text` is only what follows it
      // (the final message brings the whole answer).
      stream.partial = Boolean(entry.contentOmitted);
      stream.baseIndex = entry.index;
      this._retext(stream);
      this._emit("stream:update", stream);
    }
  }

  _forgetLater(streamId) {
    // The final message:edited carries the whole answer; the tracker only matters briefly.
    setTimeout(() => this.streams.delete(streamId), 60_000);
  }
}
