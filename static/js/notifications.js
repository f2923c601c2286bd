/**
 * notifications.js: what a page does with `notification:new`, the per-user event the server
 * sends for a message its reader asked to hear of (their per-session `notify`) or one that
 * mentions them. Shared by the session list and the room.
 *
 * - The session rows' badges (unread count, "@N" mentions) count up live; the page reads
 *   the true counts again (`GET /api/chat/sessions`) when it comes back into view, so what
 *   was read meanwhile (in a room, in another tab) clears.
 * - While the tab is hidden, each notification counts in the title, `(N) …`, cleared when it
 *   is shown again, and becomes a browser `Notification` if the reader allowed them: the
 *   "Enable notifications" button in the header asks, once (it shows while the browser has
 *   not asked yet).
 */

import { api } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { plainText } from "./markdown.js";

const BODY_CHARS = 140;

/** Set a row's badge to `count` (hidden at 0); a mention badge reads "@N". */
function setBadge(badge, count) {
  if (!badge) return;
  badge.hidden = count <= 0;
  badge.textContent = `${badge.classList.contains("badge-mention") ? "@" : ""}${count}`;
}

function badgeCount(badge) {
  return Number((badge?.textContent || "").replace("@", "")) || 0;
}

/** The rows (`[data-session-id]`) of a session on this page. */
function rowsOf(sessionId) {
  return document.querySelectorAll(`[data-session-id="${CSS.escape(sessionId)}"]`);
}

function oneLine(message) {
  const text = plainText(message.content || "").replace(/\s+/g, " ").trim();
  return text.length > BODY_CHARS ? `${text.slice(0, BODY_CHARS - 1)}…` : text;
}

/** One more unread message (a mention too, if `mentioned`) on the session's rows, and the
 * message as their preview where they show one. */
export function bumpSession(sessionId, { message, mentioned }) {
  for (const row of rowsOf(sessionId)) {
    const preview = row.querySelector(".session-preview");
    if (preview && message) {
      const who = `${message.author?.username || "Someone"}:`;
      replaceChildren(preview, h("strong", {}, who), " ", oneLine(message));
    }
    const unread = row.querySelector(".badge-unread");
    setBadge(unread, badgeCount(unread) + 1);
    if (mentioned) {
      const mentions = row.querySelector(".badge-mention");
      setBadge(mentions, badgeCount(mentions) + 1);
    }
    row.classList.add("has-unread");
  }
}

/** The rows' badges from the server's counts (the session objects' unread fields). */
export async function refreshCounts() {
  let sessions;
  try {
    sessions = await api("/api/chat/sessions");
  } catch {
    return;
  }
  for (const session of sessions) {
    for (const row of rowsOf(session.id)) {
      setBadge(row.querySelector(".badge-unread"), session.unreadCount);
      setBadge(row.querySelector(".badge-mention"), session.unreadMentionCount);
      row.classList.toggle("has-unread", session.unreadCount > 0);
    }
  }
}

/** The header's "Enable notifications" button: shown while the browser hasn't asked. */
function enableButton() {
  const button = document.getElementById("notify-enable");
  if (!button || !("Notification" in window)) return;
  button.hidden = Notification.permission !== "default";
  button.addEventListener("click", async () => {
    await Notification.requestPermission();
    button.hidden = Notification.permission !== "default";
  });
}

export class Notifier {
  /**
   * @param {object} options {client (ChatClient), roomUrl(sessionId) -> URL of a room,
   *   arrived({sessionId, sessionTitle, message, mentioned}): the page's own handling}
   */
  constructor({ client, roomUrl, arrived }) {
    this.roomUrl = roomUrl;
    this.arrived = arrived;
    this.hiddenCount = 0;
    this.title = document.title;
    enableButton();
    client.on("notification:new", (data) => this.notify(data));
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.shown();
    });
  }

  notify(data) {
    this.arrived?.(data);
    if (!document.hidden) return;
    this.hiddenCount += 1;
    document.title = `(${this.hiddenCount}) ${this.title}`;
    this.show(data);
  }

  show({ sessionId, sessionTitle, message, mentioned }) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const who = message.author?.username || "Someone";
    const shown = new Notification(
      mentioned ? `${who} mentioned you in #${sessionTitle}` : `${who} in #${sessionTitle}`,
      { body: oneLine(message), tag: message.id },
    );
    shown.onclick = () => {
      window.focus();
      window.location.assign(`${this.roomUrl(sessionId)}#message-${message.id}`);
      shown.close();
    };
  }

  shown() {
    if (!this.hiddenCount) return;
    this.hiddenCount = 0;
    document.title = this.title;
  }
}
