/**
 * pins.js: the room's pinned messages, kept live, and the panel that lists them.
 *
 * The list comes over REST (`GET /api/chat/sessions/:id/pins`) at every join, so a
 * reconnect starts from the truth; `message:pinned`, `message:unpinned`, `message:edited`
 * and `message:deleted` keep it current. Events that arrive while the list is being read
 * are applied on top of it once it is in, so none is lost to the read.
 */

import { api } from "../api.js";
import { h } from "../dom.js";
import { dayAndTime, dayLabel, fullTime } from "../format.js";
import { icon } from "../icons.js";
import { plainText } from "../markdown.js";

const SNIPPET_CHARS = 200;

export class Pins {
  /**
   * @param {object} options {sessionId, changed: () => void}
   */
  constructor({ sessionId, changed }) {
    this.sessionId = sessionId;
    this.changed = changed;
    this.byId = new Map(); // message id -> {message, pinnedBy, pinnedAt}
    this.loaded = false;
    this.buffer = null; // events seen while a load is out, applied after it
  }

  /** Pins newest first, as the REST list orders them. */
  list() {
    return [...this.byId.values()].sort(
      (a, b) => (b.pinnedAt > a.pinnedAt) - (b.pinnedAt < a.pinnedAt),
    );
  }

  get size() {
    return this.byId.size;
  }

  async load() {
    const buffer = [];
    this.buffer = buffer;
    try {
      const { pins } = await api(`/api/chat/sessions/${this.sessionId}/pins`);
      if (this.buffer !== buffer) return; // a later load took over
      this.byId = new Map(pins.map((pin) => [pin.message.id, pin]));
      this.loaded = true;
    } finally {
      if (this.buffer === buffer) this.buffer = null;
    }
    for (const apply of buffer) apply();
    this.changed();
  }

  _apply(change) {
    if (this.buffer) this.buffer.push(change);
    change();
    this.changed();
  }

  /** `message:pinned` data, or a pin ack with its message. */
  pinned({ messageId, pinnedBy, pinnedAt, message }) {
    if (!message || message.isDeleted) return;
    this._apply(() => this.byId.set(messageId, { message, pinnedBy, pinnedAt }));
  }

  unpinned(messageId) {
    this._apply(() => this.byId.delete(messageId));
  }

  /** A message changed (edited, or deleted: its pin went with it). */
  updated(message) {
    this._apply(() => {
      const pin = this.byId.get(message.id);
      if (!pin) return;
      if (message.isDeleted) this.byId.delete(message.id);
      else this.byId.set(message.id, { ...pin, message });
    });
  }
}

/**
 * The panel's content: one row per pin (who wrote it, when, its text, who pinned it), a
 * click opens the message in the timeline; "Unpin" beside it.
 *
 * @param {Array} pins newest first
 * @param {object} actions {open(message), unpin(messageId), authorName(message)}
 */
export function pinsView(pins, { open, unpin, authorName }) {
  if (!pins.length) {
    return h(
      "p",
      { class: "empty-note" },
      "No pinned messages yet. Pin one from its menu (",
      icon("pin", 12),
      ") to keep it here for everyone.",
    );
  }
  return h(
    "ul",
    { class: "pin-list", "aria-label": "Pinned messages" },
    pins.map(({ message, pinnedBy, pinnedAt }) => {
      const text = plainText(message.content || "");
      const snippet = text.length > SNIPPET_CHARS ? `${text.slice(0, SNIPPET_CHARS - 1)}…` : text;
      const jump = h(
        "button",
        { type: "button", class: "pin-open", dataset: { messageId: message.id } },
        h(
          "span",
          { class: "search-meta" },
          h("strong", {}, authorName(message)),
          h(
            "time",
            { datetime: message.createdAt, title: fullTime(message.createdAt) },
            dayAndTime(message.createdAt),
          ),
          message.parentMessageId ? h("span", { class: "tag" }, "in a thread") : null,
        ),
        h("span", { class: "search-snippet" }, snippet),
        h(
          "span",
          { class: "pin-by", title: fullTime(pinnedAt) },
          icon("pin", 11),
          `Pinned by ${pinnedBy?.username || "a former member"} · ${dayLabel(pinnedAt)}`,
        ),
      );
      jump.addEventListener("click", () => open(message));
      const remove = h(
        "button",
        {
          type: "button",
          class: "link-btn pin-remove",
          title: "Unpin for everyone",
          "aria-label": "Unpin",
        },
        "Unpin",
      );
      remove.addEventListener("click", () => unpin(message.id));
      return h("li", { class: "pin-item", dataset: { messageId: message.id } }, jump, remove);
    }),
  );
}
