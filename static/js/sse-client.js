/**
 * sse-client.js: a dependency-free client for `POST /api/stream` (seed 003's SSEChatClient).
 *
 *   const client = new SSEChatClient({ token });           // or no token: the session cookie
 *   await client.sendMessage(
 *     { messages: [{ role: "user", content: "Hello!" }], model: "llama3.2", chatId, systemPrompt },
 *     { onStart, onChunk, onComplete, onError },
 *   );
 *   client.stop();                                         // hang up: the server stops Ollama
 *
 * Why fetch and not EventSource: EventSource can only GET and can't send a body or an
 * Authorization header, and this endpoint is a POST with the conversation in its body. So the
 * response body is read as a stream and the SSE frames are parsed here, as they arrive.
 *
 * Callbacks get the events' data: onStart({messageId}), onChunk({messageId, content, done})
 * where `content` is the new text only, onComplete({messageId, fullContent, ...}),
 * onError({message, code?, status?, details?}). A refusal before the stream (a 400, 401,
 * 403, 404 or 429 in the API's JSON error shape) also arrives through onError, with its
 * `status`; a network failure or a stream cut short has `status: 0` and no code (the codes
 * are the server's).
 */

/**
 * Incremental parser of `text/event-stream`: feed it decoded text as it arrives, get back the
 * events completed so far. Follows the HTML spec's rules where they matter here: CRLF, CR or
 * LF line ends, `:` comments (the server's keepalives), several `data:` lines joined by "\n",
 * one optional space after the colon.
 */
export class SSEParser {
  constructor() {
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.event = "";
    this.data = [];
    this.id = null;
  }

  /** Returns [{event, data (string), id}] for every event the text completes. */
  feed(text) {
    this.buffer += text;
    const events = [];
    // A trailing "\r" may be the first half of "\r\n": keep it for the next feed.
    const lines = this.buffer.split(/\r\n|\r(?!$)|\n/);
    this.buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (this.data.length) {
          events.push({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
        }
        this.reset();
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.event = value;
      else if (field === "data") this.data.push(value);
      else if (field === "id") this.id = value;
    }
    return events;
  }
}

function csrfFromPage() {
  // The web app's pages carry the token in a meta tag (see static/js/api.js).
  return globalThis.document?.querySelector('meta[name="csrf-token"]')?.content || "";
}

export class SSEChatClient {
  /**
   * @param {object} [options]
   * @param {string} [options.url] the endpoint (default "/api/stream")
   * @param {string|function} [options.token] an access JWT (or a function returning one);
   *   without it the session cookie is used, with the CSRF token the server then requires
   * @param {function} [options.csrfToken] where the CSRF token comes from (default: the page)
   * @param {function} [options.fetch] a fetch implementation (default: the global one)
   */
  constructor({ url = "/api/stream", token = null, csrfToken = csrfFromPage, fetch } = {}) {
    this.url = url;
    this.token = token;
    this.csrfToken = csrfToken;
    this.fetch = fetch || globalThis.fetch.bind(globalThis);
    this.controller = null;
  }

  /** Whether an answer is being received. */
  get streaming() {
    return this.controller !== null;
  }

  /**
   * Send the conversation; resolves when the answer has ended, however it ended:
   * {status: "complete" | "error" | "stopped", content} (content: the text received).
   */
  async sendMessage(request, { onStart, onChunk, onComplete, onError } = {}) {
    this.stop(); // one answer at a time per client: a new message replaces the old answer
    const controller = new AbortController();
    this.controller = controller;
    let content = "";
    const fail = (error) => {
      onError?.(error);
      return { status: "error", content };
    };
    try {
      const response = await this.fetch(this.url, {
        method: "POST",
        headers: await this._headers(),
        body: JSON.stringify(request),
        credentials: "same-origin",
        signal: controller.signal,
      });
      if (!response.ok || !response.body) {
        const data = await response.json().catch(() => ({}));
        return fail({
          message: data.message || `The request failed (${response.status}).`,
          code: data.code,
          status: response.status,
          details: data.details,
        });
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const parser = new SSEParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const event of parser.feed(value)) {
          // stop() called from a callback: no callback after it, whatever is still buffered.
          if (controller.signal.aborted) return { status: "stopped", content };
          let data;
          try {
            data = JSON.parse(event.data);
          } catch {
            continue; // not this protocol's frame: nothing a callback could use
          }
          if (event.event === "message-start") onStart?.(data);
          else if (event.event === "message-chunk") {
            content += data.content;
            onChunk?.(data);
          } else if (event.event === "message-complete") {
            onComplete?.(data);
            return { status: "complete", content: data.fullContent };
          } else if (event.event === "error") return fail(data);
        }
      }
      // The body ended without message-complete or error: the connection broke off.
      return fail({ message: "The stream ended before the answer was complete.", status: 0 });
    } catch (error) {
      if (controller.signal.aborted) return { status: "stopped", content };
      return fail({ message: `The request failed: ${error.message}`, status: 0 });
    } finally {
      if (this.controller === controller) this.controller = null;
    }
  }

  /** Hang up: the server sees the client gone and closes its request to Ollama. */
  stop() {
    this.controller?.abort();
    this.controller = null;
  }

  async _headers() {
    const headers = { "Content-Type": "application/json", Accept: "text/event-stream" };
    const token = typeof this.token === "function" ? await this.token() : this.token;
    if (token) headers.Authorization = `Bearer ${token}`;
    else {
      const csrf = this.csrfToken?.();
      if (csrf) headers["X-CSRFToken"] = csrf;
    }
    return headers;
  }
}
