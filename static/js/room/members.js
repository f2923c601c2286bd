/**
 * members.js: the room's members with their presence dots, and the typing line.
 */

import { h, replaceChildren } from "../dom.js";
import { hueClass, initial, names } from "../format.js";

export class Members {
  /** @param {Array} initial [{id, username, role, lastSeenSeq, lastDeliveredSeq, online}] */
  constructor({ list, count, sub }, members) {
    this.listEl = list;
    this.countEl = count;
    this.subEl = sub;
    this.byId = new Map(members.map((m) => [m.id, { ...m }]));
    this.render();
  }

  get(id) {
    return this.byId.get(id);
  }

  name(id) {
    return this.byId.get(id)?.username || "someone";
  }

  all() {
    return [...this.byId.values()];
  }

  /** Add or update members from a join ack's `members` ([{id, username, role}]). */
  merge(list) {
    for (const m of list) {
      const known = this.byId.get(m.id);
      this.byId.set(m.id, { lastSeenSeq: 0, lastDeliveredSeq: 0, online: false, ...known, ...m });
    }
    this.render();
  }

  setPresence(user, online) {
    this._presence(user, online);
    this.render();
  }

  /** Presence entries ([{user, status}]: a join ack's or the REST list's), drawn once. */
  setPresenceAll(entries) {
    for (const entry of entries) this._presence(entry.user, entry.status === "online");
    this.render();
  }

  _presence(user, online) {
    const known = this.byId.get(user.id);
    if (known) known.online = online;
    else {
      this.byId.set(user.id, { ...user, role: "member", lastSeenSeq: 0, lastDeliveredSeq: 0, online });
    }
  }

  /** A reader's watermarks from `receipts:update` (they only move up); true if their read
   * watermark moved, which is what "Seen by" shows. */
  receipts({ userId, deliveredSeq, seenSeq }) {
    const member = this.byId.get(userId);
    if (!member) return false;
    member.lastDeliveredSeq = Math.max(member.lastDeliveredSeq || 0, deliveredSeq);
    if (!(seenSeq > (member.lastSeenSeq || 0))) return false;
    member.lastSeenSeq = seenSeq;
    return true;
  }

  render() {
    const members = this.all().sort(
      (a, b) => Number(b.online) - Number(a.online) || a.username.localeCompare(b.username),
    );
    replaceChildren(
      this.listEl,
      members.map((m) =>
        h(
          "li",
          {
            class: `member ${m.online ? "online" : "offline"}`,
            dataset: { userId: m.id },
            title: `${m.username} · ${m.online ? "online" : "offline"}`,
          },
          h(
            "span",
            { class: `avatar avatar-sm ${hueClass(m.id)}` },
            initial(m.username),
            h("span", { class: "presence", "aria-hidden": "true" }),
          ),
          h("span", { class: "member-name" }, m.username),
          h("span", { class: "visually-hidden" }, m.online ? "online" : "offline"),
          m.role && m.role !== "member" ? h("span", { class: "member-role" }, m.role) : null,
        ),
      ),
    );
    const online = members.filter((m) => m.online).length;
    this.countEl.textContent = String(members.length);
    this.subEl.textContent = `${members.length} member${members.length === 1 ? "" : "s"} · ${online} online`;
  }
}

/** "alice is typing…": who is typing now, each for at most 7 s without news. */
export class Typing {
  constructor(el) {
    this.el = el;
    this.users = new Map(); // id -> {username, timer}
  }

  stop(user) {
    this._remove(user);
    this.render();
  }

  /** A `typing:update`'s lists, drawn once. */
  update(started, stopped) {
    for (const user of stopped) this._remove(user);
    for (const user of started) this._add(user);
    this.render();
  }

  _add(user) {
    const entry = this.users.get(user.id) || { username: user.username };
    clearTimeout(entry.timer);
    // The server ends a silent typist after 6 s; this is the safety net if that is lost.
    entry.timer = setTimeout(() => this.stop(user), 7000);
    this.users.set(user.id, entry);
  }

  _remove(user) {
    const entry = this.users.get(user.id);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.users.delete(user.id);
  }

  render() {
    const list = [...this.users.values()].map((u) => u.username);
    if (!list.length) {
      this.el.replaceChildren();
      return;
    }
    const text =
      list.length > 3
        ? "Several people are typing…"
        : `${names(list)} ${list.length === 1 ? "is" : "are"} typing…`;
    replaceChildren(
      this.el,
      h("span", { class: "typing-dots", "aria-hidden": "true" }, h("span"), h("span"), h("span")),
      h("span", {}, text),
    );
  }
}
