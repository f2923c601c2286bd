/**
 * timeline.js: an ordered, scrolling list of messages (the room's, or one thread's).
 *
 * Messages are kept in `seq` order (ones still being sent go last, in the order written).
 * Consecutive messages by one author within five minutes are grouped under one name, days
 * get a separator, and an "unread" line marks where new messages began.
 *
 * Scrolling never fights the reader: the view follows new content only while it is at the
 * bottom; otherwise a "new messages" pill counts what arrived below.
 */

import { h } from "../dom.js";
import { dayLabel, sameDay } from "../format.js";
import { messageElement, updateMessage } from "./message-view.js";

const GROUP_MS = 5 * 60 * 1000;
const BOTTOM_SLACK_PX = 48;

function order(a, b) {
  const sa = Number.isFinite(a.seq) ? a.seq : Infinity;
  const sb = Number.isFinite(b.seq) ? b.seq : Infinity;
  if (sa !== sb) return sa - sb;
  return (a.localOrder || 0) - (b.localOrder || 0);
}

export class Timeline {
  /**
   * @param {HTMLElement} scroller the element that scrolls
   * @param {HTMLElement} list where message elements go
   * @param {object} options {ctxFor(msg) -> render context, pill?: HTMLElement,
   *   onStick?: () => void, onNearTop?: () => void}
   */
  constructor(scroller, list, options) {
    this.scroller = scroller;
    this.list = list;
    this.ctxFor = options.ctxFor;
    this.pill = options.pill || null;
    this.onStick = options.onStick || (() => {});
    this.onNearTop = options.onNearTop || (() => {});
    this.items = []; // messages, in order
    this.elements = new Map(); // id -> element
    this.stick = true;
    this.unseenBelow = 0;
    this.unreadAfterSeq = null;
    this.layoutPending = false;

    scroller.addEventListener("scroll", () => this._scrolled(), { passive: true });
    // Content grows without new messages too (a streamed answer, an image loading): stay
    // pinned to the bottom while the reader is there.
    new ResizeObserver(() => {
      if (this.stick) this.scrollToBottom();
    }).observe(list);
    this.pill?.addEventListener("click", () => this.scrollToBottom(true));
  }

  _scrolled() {
    const { scrollTop, scrollHeight, clientHeight } = this.scroller;
    const atBottom = scrollHeight - scrollTop - clientHeight < BOTTOM_SLACK_PX;
    if (atBottom !== this.stick) this.stick = atBottom;
    if (atBottom) {
      this._setUnseen(0);
      this.onStick();
    }
    if (scrollTop < 200) this.onNearTop();
  }

  _setUnseen(n) {
    this.unseenBelow = n;
    if (!this.pill) return;
    this.pill.hidden = n === 0;
    this.pill.textContent = n === 1 ? "1 new message ↓" : `${n} new messages ↓`;
  }

  scrollToBottom(smooth = false) {
    this.scroller.scrollTo({
      top: this.scroller.scrollHeight,
      behavior: smooth ? "smooth" : "auto",
    });
    this.stick = true;
    this._setUnseen(0);
  }

  has(id) {
    return this.elements.has(id);
  }

  get oldestSeq() {
    const first = this.items.find((m) => Number.isFinite(m.seq));
    return first ? first.seq : null;
  }

  /** Put `msg` in (or update it). `{own: true}` scrolls to it whatever the position. */
  upsert(msg, { own = false, quiet = false } = {}) {
    const existing = this.elements.get(msg.id);
    if (existing) {
      const index = this.items.findIndex((m) => m.id === msg.id);
      this.items[index] = msg;
      updateMessage(existing, msg, this.ctxFor(msg));
      return existing;
    }
    const el = messageElement(msg, this.ctxFor(msg));
    this.elements.set(msg.id, el);
    let index = this.items.length;
    while (index > 0 && order(this.items[index - 1], msg) > 0) index -= 1;
    this.items.splice(index, 0, msg);
    const next = this.items[index + 1];
    this.list.insertBefore(el, next ? this.elements.get(next.id) : null);
    const atEnd = index === this.items.length - 1;
    this._scheduleLayout();
    if (atEnd && !quiet) {
      if (own || this.stick) queueMicrotask(() => this.scrollToBottom());
      else this._setUnseen(this.unseenBelow + 1);
    }
    return el;
  }

  /** Add older messages above the current ones, keeping what the reader sees in place. */
  prepend(messages) {
    const before = this.scroller.scrollHeight - this.scroller.scrollTop;
    for (const msg of messages) this.upsert(msg, { quiet: true });
    this._layout();
    this.scroller.scrollTop = this.scroller.scrollHeight - before;
  }

  remove(id) {
    const el = this.elements.get(id);
    if (!el) return;
    el.remove();
    this.elements.delete(id);
    this.items = this.items.filter((m) => m.id !== id);
    this._scheduleLayout();
  }

  /** Re-render one message (its context changed: a stream, seen receipts, editing). */
  refresh(id) {
    const msg = this.items.find((m) => m.id === id);
    if (msg) updateMessage(this.elements.get(id), msg, this.ctxFor(msg));
  }

  refreshAll() {
    for (const msg of this.items) updateMessage(this.elements.get(msg.id), msg, this.ctxFor(msg));
  }

  clear() {
    this.items = [];
    this.elements.clear();
    this.list.replaceChildren();
  }

  /** Mark where unread messages begin (the first message after `seq` by someone else). */
  markUnreadAfter(seq) {
    this.unreadAfterSeq = seq;
    this._layout();
    return this.list.querySelector(".unread-sep");
  }

  flash(id) {
    const el = this.elements.get(id);
    if (!el) return false;
    el.scrollIntoView({ block: "center", behavior: "smooth" });
    el.classList.remove("flash");
    void el.offsetWidth; // restart the animation
    el.classList.add("flash");
    return true;
  }

  _scheduleLayout() {
    if (this.layoutPending) return;
    this.layoutPending = true;
    requestAnimationFrame(() => {
      this.layoutPending = false;
      this._layout();
    });
  }

  /** Grouping, day separators and the unread line, from the current order. */
  _layout() {
    for (const sep of this.list.querySelectorAll(".day-sep, .unread-sep")) sep.remove();
    let previous = null;
    let unreadPlaced = false;
    for (const msg of this.items) {
      const el = this.elements.get(msg.id);
      const newDay = !previous || !sameDay(previous.createdAt, msg.createdAt);
      if (newDay) {
        this.list.insertBefore(
          h("div", { class: "day-sep", role: "separator" }, h("span", {}, dayLabel(msg.createdAt))),
          el,
        );
      }
      let unreadHere = false;
      if (
        !unreadPlaced &&
        this.unreadAfterSeq !== null &&
        Number.isFinite(msg.seq) &&
        msg.seq > this.unreadAfterSeq &&
        !el.classList.contains("mine")
      ) {
        unreadPlaced = unreadHere = true;
        this.list.insertBefore(
          h("div", { class: "unread-sep", role: "separator" }, h("span", {}, "New messages")),
          el,
        );
      }
      const continued =
        previous &&
        !newDay &&
        !unreadHere &&
        previous.author?.id === msg.author?.id &&
        el.dataset.author === this.elements.get(previous.id).dataset.author &&
        new Date(msg.createdAt) - new Date(previous.createdAt) < GROUP_MS;
      el.classList.toggle("continued", Boolean(continued));
      previous = msg;
    }
  }
}
