/**
 * mentions.js: `@username` in the room: highlighting the mentions of a rendered message,
 * and completing a name while one is typed in a composer: the room's members, and the
 * assistant and its agents (`@assistant` or `@<agent name>` asks them to answer).
 *
 * The server says who a message mentions (`message.mentions`: user, offset and length in
 * the content, UTF-16 code units as JavaScript counts). Markdown rendering moves text
 * around, so the rendered text is searched for those same `@names` (outside code and
 * links), with the server's rule: not after a word character, a trailing "." or "-" kept
 * only if the name has it.
 */

import { h, replaceChildren } from "../dom.js";
import { hueClass, initial } from "../format.js";
import { icon } from "../icons.js";

const NAME = "[\\p{L}\\p{N}\\p{M}_.@+-]";
const MENTION = new RegExp(`(?<![\\p{L}\\p{N}\\p{M}_])@(${NAME}+)`, "gu");
const TYPING = new RegExp(`(?:^|[^\\p{L}\\p{N}\\p{M}_])@(${NAME}*)$`, "u");
const SKIP = new Set(["CODE", "PRE", "A", "KBD"]);
const MAX_CHOICES = 8;

function spellings(name) {
  const list = [name];
  while (/[.-]$/.test(list[list.length - 1])) list.push(list[list.length - 1].slice(0, -1));
  return list.filter(Boolean);
}

/** Wrap the message's mentions in `root` (rendered content) in `span.mention` (and
 * `.mention-me` for the reader's own name). */
export function highlightMentions(root, msg, meId) {
  const named = new Map();
  for (const { user, offset, length } of msg.mentions || []) {
    const token = (msg.content || "").slice(offset + 1, offset + length);
    named.set(token.toLowerCase(), user);
  }
  if (!named.size) return root;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const texts = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    let skip = false;
    for (let el = node.parentElement; el && el !== root; el = el.parentElement) {
      if (SKIP.has(el.tagName)) skip = true;
    }
    if (!skip && node.nodeValue.includes("@")) texts.push(node);
  }
  for (const node of texts) {
    const text = node.nodeValue;
    const parts = [];
    let last = 0;
    for (const match of text.matchAll(MENTION)) {
      const spelling = spellings(match[1]).find((s) => named.has(s.toLowerCase()));
      if (!spelling) continue;
      const user = named.get(spelling.toLowerCase());
      parts.push(text.slice(last, match.index));
      parts.push(
        h(
          "span",
          {
            class: `mention${user.id === meId ? " mention-me" : ""}`,
            dataset: { userId: String(user.id) },
            title: user.username,
          },
          `@${spelling}`,
        ),
      );
      last = match.index + 1 + spelling.length;
    }
    if (!parts.length) continue;
    parts.push(text.slice(last));
    node.replaceWith(...parts.filter((part) => part !== ""));
  }
  return root;
}

/** What `@` completes for the assistant: `assistant` (the room's own) and each agent by
 * name (from GET /api/llm/agents), marked `agent`. */
export function agentMentionables(agents) {
  return [
    { id: "assistant", username: "assistant", agent: true },
    ...(agents || []).map((a) => ({ id: a.id, username: a.name, agent: true })),
  ];
}

/** The toast for an `@assistant` that could not start an answer (`stream:error` with no
 * streamId, sent to its sender alone). */
export function mentionRefusalText(error) {
  const message = error?.message || "something went wrong";
  switch (error?.code) {
    case "RATE_LIMITED":
      return `The assistant can't answer yet: ${message}`;
    case "STREAM_LIMIT":
      return `The assistant is busy: ${message}`;
    default:
      return `The assistant couldn't answer: ${message}`;
  }
}

/**
 * The `@` completion of a composer: a list of the room's members (and agents) whose names
 * start with what follows the `@` before the caret, agents first. Arrow keys move, Enter or
 * Tab picks, Escape closes.
 */
export class MentionComplete {
  /**
   * @param {HTMLTextAreaElement} textarea
   * @param {HTMLElement} form the composer's form: the list is placed in it, and its keys
   *   are read there first (capture), before the composer's own Enter-to-send
   * @param {() => Array<{id, username, agent?}>} members who can be named (`agent`: the
   *   assistant or an agent, see `agentMentionables`)
   */
  constructor(textarea, form, members) {
    this.textarea = textarea;
    this.members = members;
    this.choices = [];
    this.index = 0;
    this.list = h("ul", {
      class: "mention-complete",
      role: "listbox",
      "aria-label": "Members to mention",
      hidden: true,
    });
    form.append(this.list);
    textarea.addEventListener("input", () => this.update());
    textarea.addEventListener("click", () => this.update());
    textarea.addEventListener("blur", () => setTimeout(() => this.close(), 150));
    form.addEventListener("keydown", (event) => this.keydown(event), true);
    this.list.addEventListener("mousedown", (event) => {
      const item = event.target.closest("li");
      if (!item) return;
      event.preventDefault();
      this.pick(Number(item.dataset.index));
    });
  }

  get open() {
    return !this.list.hidden;
  }

  /** What is typed after an `@` right before the caret, or null. */
  query() {
    const { value, selectionStart, selectionEnd } = this.textarea;
    if (selectionStart !== selectionEnd) return null;
    const match = TYPING.exec(value.slice(0, selectionStart));
    return match ? match[1] : null;
  }

  update() {
    const query = this.query();
    if (query === null) return this.close();
    const wanted = query.toLowerCase();
    this.choices = this.members()
      .filter((m) => m.username.toLowerCase().startsWith(wanted))
      .sort((a, b) => Boolean(b.agent) - Boolean(a.agent) || a.username.localeCompare(b.username))
      .slice(0, MAX_CHOICES);
    if (!this.choices.length) return this.close();
    this.index = Math.min(this.index, this.choices.length - 1);
    this.render();
  }

  render() {
    replaceChildren(
      this.list,
      this.choices.map((member, index) =>
        h(
          "li",
          {
            role: "option",
            id: `mention-choice-${member.id}`,
            "aria-selected": String(index === this.index),
            dataset: {
              index: String(index),
              username: member.username,
              kind: member.agent ? "agent" : "member",
            },
          },
          member.agent
            ? h(
                "span",
                { class: "avatar avatar-sm avatar-agent", "aria-hidden": "true" },
                icon("sparkles", 13),
              )
            : h(
                "span",
                { class: `avatar avatar-sm ${hueClass(member.id)}`, "aria-hidden": "true" },
                initial(member.username),
              ),
          h("span", { class: "mention-choice-name" }, member.username),
          member.agent ? h("span", { class: "mention-choice-tag" }, "agent") : null,
        ),
      ),
    );
    this.list.hidden = false;
    const active = `mention-choice-${this.choices[this.index].id}`;
    this.textarea.setAttribute("aria-activedescendant", active);
  }

  close() {
    this.list.hidden = true;
    this.index = 0;
    this.textarea.removeAttribute("aria-activedescendant");
  }

  keydown(event) {
    if (!this.open || event.target !== this.textarea || event.isComposing) return;
    const moves = { ArrowDown: 1, ArrowUp: -1 };
    if (event.key in moves) {
      this.index = (this.index + moves[event.key] + this.choices.length) % this.choices.length;
      this.render();
    } else if (event.key === "Enter" || event.key === "Tab") {
      this.pick(this.index);
    } else if (event.key === "Escape") {
      this.close();
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  }

  /** Put the chosen name in place of what was typed after the `@`, and a space after it. */
  pick(index) {
    const member = this.choices[index];
    const query = this.query();
    if (!member || query === null) return this.close();
    const { value, selectionStart } = this.textarea;
    const start = selectionStart - query.length;
    const insert = `${member.username} `;
    this.textarea.value = value.slice(0, start) + insert + value.slice(selectionStart);
    const caret = start + insert.length;
    this.textarea.setSelectionRange(caret, caret);
    this.close();
    this.textarea.dispatchEvent(new Event("input", { bubbles: true }));
  }
}
