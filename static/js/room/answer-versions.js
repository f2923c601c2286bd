/**
 * answer-versions.js: the versions of an assistant answer (Regenerate, Edit and resend).
 *
 * An answer regenerated at least once lists its versions in `metadata.versions` and says
 * which one it shows (`metadata.version`: the newest finished one). Under such an answer a
 * switcher "‹ 2 / 3 ›" browses them: the first step fetches every version's text
 * (`GET /api/chat/messages/:id/versions`), then the bubble shows the chosen version's text
 * with its model and who asked for it. While a new version streams, the bubble shows the
 * stream and the switcher waits; once the answer shows another version, browsing starts
 * again from it.
 */

import { api } from "../api.js";
import { h } from "../dom.js";
import { icon } from "../icons.js";

/** The versions an answer lists that can be browsed: not the one still streaming (none for
 * an answer never regenerated). */
function browsable(msg) {
  const listed = Array.isArray(msg.metadata?.versions) ? msg.metadata.versions : [];
  return listed.filter((v) => v.status !== "streaming");
}

export class AnswerVersions {
  /** `refresh(id)` re-renders a message; `failed(text)` tells the user. */
  constructor({ refresh, failed }) {
    this.refresh = refresh;
    this.failed = failed;
    this.browsing = new Map(); // message id -> {version, from: the version shown then}
    this.texts = new Map(); // message id -> {count, byVersion: Map(version -> entry)}
  }

  /** The version the bubble shows here: the one browsed to, else the message's own. */
  current(msg) {
    const shown = msg.metadata?.version || 1;
    const browsing = this.browsing.get(msg.id);
    return browsing && browsing.from === shown ? browsing.version : shown;
  }

  /** The browsed version's entry `{version, content, model, requestedBy, status}`, or null
   * when the bubble shows the message's own text. */
  viewed(msg) {
    const version = this.current(msg);
    if (version === (msg.metadata?.version || 1)) return null;
    return this.texts.get(msg.id)?.byVersion.get(version) || null;
  }

  /** Browse one version back (-1) or on (+1). */
  async step(msg, by) {
    const listed = browsable(msg);
    const numbers = listed.map((v) => v.version);
    const at = numbers.indexOf(this.current(msg));
    const next = numbers[Math.min(numbers.length - 1, Math.max(0, at + by))];
    if (next === undefined || next === this.current(msg)) return;
    try {
      await this._load(msg, listed.length);
    } catch (error) {
      this.failed(`Couldn't load the versions: ${error.message}`);
      return;
    }
    this.browsing.set(msg.id, { version: next, from: msg.metadata?.version || 1 });
    this.refresh(msg.id);
  }

  async _load(msg, count) {
    const known = this.texts.get(msg.id);
    if (known && known.count >= count) return;
    const data = await api(`/api/chat/messages/${msg.id}/versions`);
    const versions = data.versions || [];
    const byVersion = new Map(versions.map((v) => [v.version, v]));
    // A version still being written has no text yet: fetch again once it has ended.
    const ended = versions.filter((v) => !["pending", "streaming"].includes(v.status)).length;
    this.texts.set(msg.id, { count: ended, byVersion });
  }
}

/** The switcher's slot: `[key, render]` as message-view's slots are. */
export function versionsSlot(msg, ctx) {
  const listed = browsable(msg);
  const stream = ctx.streamFor(msg.id);
  if (msg.isDeleted || listed.length < 2 || stream?.status === "streaming" || !ctx.versions) {
    return ["", null];
  }
  const current = ctx.versions.current(msg);
  const at = Math.max(0, listed.findIndex((v) => v.version === current));
  const entry = listed[at];
  const who = entry.requestedBy?.username;
  const status = entry.status === "completed" ? null : entry.status;
  const about = [entry.model, who ? `asked by ${who}` : null, status].filter(Boolean).join(" · ");
  const key = `${at}/${listed.length}|${about}`;
  const step = (action, label, name, disabled) =>
    h(
      "button",
      {
        type: "button",
        class: "icon-btn version-step",
        title: label,
        "aria-label": label,
        disabled,
        dataset: { action },
      },
      icon(name, 14),
    );
  return [
    key,
    () =>
      h(
        "div",
        { class: "answer-versions", role: "group", "aria-label": "Versions of this answer" },
        step("version-prev", "Previous version", "chevron-left", at === 0),
        h("span", { class: "version-count" }, `${at + 1} / ${listed.length}`),
        step("version-next", "Next version", "chevron-right", at === listed.length - 1),
        about ? h("span", { class: "version-about muted" }, about) : null,
      ),
  ];
}
