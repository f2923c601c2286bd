/**
 * message-view.js: one message as DOM.
 *
 * A message element is made of slots (header, content, tools, status, attachments,
 * reactions, replies, seen). `updateMessage` re-renders only the slots whose data changed:
 * while an answer streams, its text changes many times a second but its Stop button stays
 * the same node, so a click on it is never lost to a re-render.
 *
 * Buttons carry `data-action`; the timeline handles clicks by delegation (room.js).
 */

import { enhanceCodeBlocks } from "../code-blocks.js";
import { h, replaceChildren } from "../dom.js";
import { clockTime, fileSize, fullTime, hueClass, initial, names } from "../format.js";
import { icon } from "../icons.js";
import { renderMarkdown, safeHref } from "../markdown.js";
import { versionsSlot } from "./answer-versions.js";
import { citationsSlot, indexStatusNode } from "./grounding.js";
import { highlightMentions } from "./mentions.js";

const SLOTS = [
  "header",
  "content",
  "versions",
  "tools",
  "status",
  "citations",
  "attachments",
  "reactions",
  "replies",
  "seen",
];

// An answer still marked as streaming this long after it began, with no live stream, was cut
// off (its worker stopped); a younger one is just about to start.
const STALE_MS = 2 * 60 * 1000;

export const QUICK_EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "😢", "👀", "✅"];

/** Who wrote a message, as the timeline groups and labels it. */
export function authorKey(msg) {
  const hook = msg.metadata?.webhook;
  if (hook) return `w${hook.id}:${hook.username}`;
  if (msg.author) return `u${msg.author.id}`;
  return msg.role === "assistant" ? `a${msg.agentId || ""}` : `r${msg.role}`;
}

export function authorName(msg, ctx) {
  // A webhook's post shows the name it was posted under (its bot's username otherwise).
  if (msg.metadata?.webhook?.username) return msg.metadata.webhook.username;
  if (msg.author) return msg.author.username;
  if (msg.role === "assistant") return ctx.agentName(msg.agentId);
  return msg.role === "system" ? "System" : "Tool";
}

function avatar(msg, ctx) {
  if (msg.role === "assistant" && !msg.author) {
    return h(
      "span",
      { class: "avatar avatar-assistant", "aria-hidden": "true" },
      icon("sparkles", 18),
    );
  }
  const name = authorName(msg, ctx);
  return h(
    "span",
    { class: `avatar ${hueClass(msg.author?.id)}`, "aria-hidden": "true" },
    initial(name),
  );
}

/** The live stream of an assistant message, if it is being written now. */
function liveStream(msg, ctx) {
  const stream = ctx.streamFor(msg.id);
  if (!stream) return null;
  // Once the final message:edited is in, the stored message is the truth: the message's
  // own stream's (a regenerate streams another one into a message that shows an older one).
  const finalStatus = msg.metadata?.status;
  const same = !msg.metadata?.streamId || msg.metadata.streamId === stream.streamId;
  if (finalStatus && finalStatus !== "streaming" && stream.status === "streaming" && same)
    return null;
  return stream;
}

// --- slots --------------------------------------------------------------------------------

function headerSlot(msg, ctx) {
  const name = authorName(msg, ctx);
  const model =
    msg.role === "assistant" ? msg.metadata?.model || ctx.streamFor(msg.id)?.model : null;
  const pinnedBy = msg.pinnedAt ? msg.pinnedBy?.username || "someone" : null;
  const key = [name, msg.createdAt, msg.isEdited, msg.isDeleted, model, msg.isBot, pinnedBy];
  return [
    key.join("|"),
    () =>
      h(
        "header",
        { class: "msg-header" },
        h("strong", { class: "msg-author" }, name),
        msg.role === "assistant" && !msg.author ? h("span", { class: "tag tag-ai" }, "AI") : null,
        msg.isBot ? h("span", { class: "tag tag-bot", title: "A bot account" }, "bot") : null,
        model ? h("span", { class: "msg-model" }, model) : null,
        h(
          "time",
          { class: "msg-time", datetime: msg.createdAt, title: fullTime(msg.createdAt) },
          clockTime(msg.createdAt),
        ),
        editedMark(msg),
        pinnedBy
          ? h(
              "span",
              { class: "msg-pinned", title: `Pinned by ${pinnedBy} ${fullTime(msg.pinnedAt)}` },
              icon("pin", 12),
              "Pinned",
            )
          : null,
      ),
  ];
}

/** "(edited)": a button that opens the message's earlier versions (none once deleted). */
function editedMark(msg) {
  if (!msg.isEdited) return null;
  if (msg.isDeleted) return h("span", { class: "msg-edited" }, "(edited)");
  return h(
    "button",
    {
      type: "button",
      class: "msg-edited link-btn",
      title: `Edited ${fullTime(msg.editedAt)}: show the earlier versions`,
      dataset: { action: "history" },
    },
    "(edited)",
  );
}

/** An answer stored as streaming, recently enough that its stream may still be starting. */
function isYoungStream(msg, ctx) {
  return msg.metadata?.status === "streaming" && ctx.now() - Date.parse(msg.createdAt) <= STALE_MS;
}

/** A message sent with files and no text carries their names as its text (a message needs
 * some): the files themselves (attached, uploading or failed) say that, so the text is not
 * shown twice. */
function isFileNamesOnly(msg, ctx) {
  const names = new Set([
    ...ctx.uploadsFor(msg).map((u) => u.name),
    ...(msg.attachments || []).map((a) => a.fileName),
  ]);
  return names.size > 0 && (msg.content || "").split(", ").every((name) => names.has(name));
}

/** The editor as tall as its text (up to its CSS max-height), so no line starts hidden. */
function fitEditor(area) {
  const borders = area.offsetHeight - area.clientHeight;
  area.style.height = "auto";
  area.style.height = `${area.scrollHeight + borders}px`;
}

function contentSlot(msg, ctx) {
  if (ctx.editing) {
    return [
      `edit:${msg.id}:${Boolean(ctx.resending)}`,
      () => {
        const area = h("textarea", {
          class: "edit-input",
          rows: "2",
          "aria-label": "Edit message",
        });
        area.value = msg.content;
        area.addEventListener("input", () => fitEditor(area));
        return h(
          "div",
          { class: "msg-editor" },
          area,
          h(
            "div",
            { class: "msg-editor-actions" },
            h(
              "span",
              { class: "muted small" },
              ctx.resending ? "Enter to resend · Esc to cancel" : "Enter to save · Esc to cancel",
            ),
            h(
              "button",
              { type: "button", class: "btn btn-sm", dataset: { action: "edit-cancel" } },
              "Cancel",
            ),
            h(
              "button",
              { type: "button", class: "btn btn-sm btn-primary", dataset: { action: "edit-save" } },
              ctx.resending ? "Resend" : "Save",
            ),
          ),
        );
      },
    ];
  }
  if (msg.isDeleted) {
    return [
      "deleted",
      () => h("div", { class: "msg-content msg-tombstone" }, "This message was deleted."),
    ];
  }
  if (isFileNamesOnly(msg, ctx)) return ["files-only", null];
  const stream = msg.role === "assistant" ? liveStream(msg, ctx) : null;
  // A partial stream's text lacks its start (too large for the join reply): say so.
  const streamText = stream?.partial ? `…${stream.text}` : stream?.text;
  const streaming = stream?.status === "streaming";
  // An earlier version browsed to (answer-versions.js) shows instead of the message's own.
  const viewed = streaming ? null : ctx.versions?.viewed(msg);
  const own = stream && (streaming || !msg.content) ? streamText : msg.content;
  const text = viewed ? viewed.content : own;
  // Dots while an answer has no text yet and may still get some.
  const waiting =
    !text && msg.role === "assistant" && (streaming || (!stream && isYoungStream(msg, ctx)));
  if (!text && !waiting) return ["empty", null];
  const mentions = streaming ? [] : msg.mentions || [];
  const key = `${streaming ? "s" : "t"}:${waiting}:${mentions.length}:${text}`;
  return [
    key,
    () => {
      const body = h("div", { class: `msg-content markdown${streaming ? " streaming" : ""}` });
      if (waiting) {
        body.append(
          h(
            "span",
            { class: "thinking", "aria-label": "The assistant is thinking" },
            h("span"),
            h("span"),
            h("span"),
          ),
        );
      } else {
        const rendered = highlightMentions(renderMarkdown(text), { ...msg, mentions }, ctx.me.id);
        body.append(enhanceCodeBlocks(rendered));
      }
      if (streaming && text)
        caretTarget(body).append(h("span", { class: "caret", "aria-hidden": "true" }));
      return body;
    },
  ];
}

/** Where a streaming caret goes: at the end of the last line of text, not below it. */
function caretTarget(body) {
  let target = body.lastElementChild || body;
  while (target.matches("ul, ol, pre, .code-block, table, thead, tbody, tr")) {
    if (target.classList.contains("code-block")) target = target.querySelector("pre");
    const next = target.lastElementChild;
    if (!next) break;
    target = next;
    if (target.matches("li, code, td")) break;
  }
  return target;
}

function shortJson(value, max = 60) {
  let text;
  try {
    text = typeof value === "string" ? value : JSON.stringify(value);
  } catch {
    text = String(value);
  }
  return text && text.length > max ? `${text.slice(0, max - 1)}…` : (text ?? "");
}

function toolsSlot(msg, ctx) {
  if (msg.role !== "assistant" || msg.isDeleted) return ["", null];
  const stream = ctx.streamFor(msg.id);
  const tools = stream?.tools?.length ? stream.tools : msg.metadata?.toolCalls || [];
  if (!tools.length) return ["", null];
  const key = JSON.stringify(tools);
  return [
    key,
    () =>
      h(
        "ul",
        { class: "msg-tools", "aria-label": "Tools the assistant used" },
        tools.map((tool) => {
          const args =
            tool.args && typeof tool.args === "object"
              ? Object.values(tool.args)
                  .map((v) => shortJson(v, 40))
                  .join(", ")
              : shortJson(tool.args, 40);
          return h(
            "li",
            {
              class: "tool-call",
              title: `${tool.name}(${shortJson(tool.args, 400)}) → ${shortJson(tool.result, 400)}`,
            },
            h("span", { class: "tool-icon" }, icon("tool", 12)),
            h("code", {}, `${tool.name}(${args})`),
            tool.result !== undefined && tool.result !== null
              ? h("span", { class: "tool-result" }, `→ ${shortJson(tool.result)}`)
              : null,
          );
        }),
      ),
  ];
}

/** Words for a failed answer: the server's message when we have it. */
export function streamErrorText(error) {
  const message = error?.message || "something went wrong";
  switch (error?.code) {
    case "INVALID_MODEL":
      return `The assistant can't use that model: ${message}`;
    case "STREAM_LIMIT":
      return `The assistant is busy: ${message}`;
    case "STREAM_INTERRUPTED":
      return `The answer was interrupted: ${message}`;
    default:
      return `The assistant is unavailable: ${message}`;
  }
}

/** A file of the message still uploading (a progress bar), or one that failed to. */
function uploadRow(upload) {
  if (!upload.failed) {
    return h(
      "div",
      { class: "upload" },
      h("span", { class: "upload-name" }, upload.name),
      h("progress", { max: "100", value: String(Math.round((upload.progress || 0) * 100)) }),
    );
  }
  const button = (action, label) =>
    h(
      "button",
      { type: "button", class: "link-btn", dataset: { action, name: upload.name } },
      label,
    );
  return h(
    "div",
    { class: "upload upload-error", role: "alert" },
    icon("file", 14),
    h("span", { class: "upload-name" }, upload.name),
    h("span", { class: "upload-why" }, `wasn't attached: ${upload.error}.`),
    h(
      "span",
      { class: "upload-actions" },
      button("upload-again", "Attach again…"),
      button("upload-remove", "Remove"),
    ),
  );
}

function statusSlot(msg, ctx) {
  // A message of ours still in the outbox, or refused by the server.
  if (msg.pending) {
    if (msg.failed) {
      return [
        `failed:${msg.failed}`,
        () =>
          h(
            "div",
            { class: "msg-status msg-status-error", role: "alert" },
            h("span", {}, `Not sent: ${msg.failed}`),
            h(
              "button",
              { type: "button", class: "link-btn", dataset: { action: "restore" } },
              "Edit",
            ),
            h(
              "button",
              { type: "button", class: "link-btn", dataset: { action: "discard" } },
              "Discard",
            ),
          ),
      ];
    }
    return [
      `pending:${ctx.online}`,
      () =>
        h(
          "div",
          { class: "msg-status muted" },
          ctx.online ? "Sending…" : "Waiting for the connection…",
        ),
    ];
  }
  const uploads = ctx.uploadsFor(msg);
  const parts = [];
  let key = "";
  if (uploads.length) {
    key += JSON.stringify(uploads.map((u) => [u.name, Math.round(u.progress * 100), u.error]));
  }
  const stream = msg.role === "assistant" ? liveStream(msg, ctx) : null;
  const status = stream?.status || msg.metadata?.status;
  // Who asked, who stopped and why it failed: the live stream's word, else the stored
  // message's, so a reload reads exactly what the live view read.
  const meta = msg.metadata || {};
  const askedBy = (stream?.requestedBy || meta.requestedBy)?.username;
  const stoppedBy = (stream?.stoppedBy || meta.stoppedBy)?.username;
  const stored = meta.errorMessage ? { code: meta.errorCode, message: meta.errorMessage } : null;
  const error = stream?.error || stored;
  if (msg.role === "assistant" && status && status !== "completed") {
    const stale = !stream && !isYoungStream(msg, ctx);
    key += `|${status}|${stream?.streamId}|${askedBy}|${stoppedBy}|${error?.message}|${stale}`;
  }
  if (!key) return ["", null];
  return [
    key,
    () => {
      for (const upload of uploads) parts.push(uploadRow(upload));
      if (msg.role === "assistant" && status === "streaming" && stream) {
        parts.push(
          h(
            "div",
            { class: "stream-bar" },
            h("span", { class: "pulse", "aria-hidden": "true" }),
            h("span", {}, askedBy ? `Answering ${askedBy}…` : "Answering…"),
            h(
              "button",
              {
                type: "button",
                class: "btn btn-sm btn-stop",
                dataset: { action: "stop", stream: stream.streamId },
              },
              icon("stop", 12),
              "Stop",
            ),
          ),
        );
      } else if (status === "stopped") {
        const words = stoppedBy ? `Stopped by ${stoppedBy}.` : "Stopped.";
        parts.push(h("div", { class: "msg-status muted" }, words));
      } else if (status === "failed") {
        const text = error
          ? streamErrorText(error)
          : `The answer failed${meta.errorCode ? ` (${meta.errorCode})` : ""}.`;
        parts.push(h("div", { class: "msg-status msg-status-error", role: "alert" }, text));
      } else if (status === "streaming" && !stream && !isYoungStream(msg, ctx)) {
        // Stored as streaming, yet no stream is running for it: its worker went away.
        parts.push(h("div", { class: "msg-status muted" }, "The answer was not finished."));
      }
      return h("div", { class: "msg-statuses" }, parts);
    },
  ];
}

function attachmentsSlot(msg) {
  const list = msg.isDeleted ? [] : msg.attachments || [];
  if (!list.length) return ["", null];
  return [
    JSON.stringify(list.map((a) => [a.id, a.fileUrl, a.indexStatus, a.indexError])),
    () =>
      h(
        "div",
        { class: "msg-attachments" },
        list.map((a) => {
          // Our own download URL ("/api/...") or a checked http(s) link; nothing else.
          const local = typeof a.fileUrl === "string" && a.fileUrl.startsWith("/api/");
          const href = local ? a.fileUrl : safeHref(a.fileUrl);
          const isImage = local && /^image\//.test(a.mimeType || "");
          const label = h("span", { class: "file-name" }, a.fileName);
          const meta = h(
            "span",
            { class: "file-meta" },
            [a.mimeType, fileSize(a.fileSize)].filter(Boolean).join(" · "),
          );
          if (!href)
            return h("div", { class: "file" }, h("span", { class: "file-text" }, label, meta));
          return h(
            "figure",
            {
              class: `attachment${isImage ? " attachment-image" : ""}`,
              dataset: { attachment: a.id },
            },
            isImage
              ? h(
                  "button",
                  {
                    type: "button",
                    class: "image-open",
                    dataset: { action: "open-image", src: href, name: a.fileName },
                  },
                  h("img", {
                    src: href,
                    alt: a.fileName,
                    loading: "lazy",
                    width: a.metadata?.width,
                    height: a.metadata?.height,
                  }),
                )
              : null,
            h(
              "figcaption",
              { class: "file" },
              h("span", { class: "file-icon" }, icon(isImage ? "image" : "file", 16)),
              h("span", { class: "file-text" }, label, meta, indexStatusNode(a)),
              h(
                "a",
                {
                  class: "file-download",
                  href,
                  download: local ? a.fileName : null,
                  rel: "noopener noreferrer nofollow",
                  target: local ? null : "_blank",
                },
                local ? "Download" : "Open",
              ),
            ),
          );
        }),
      ),
  ];
}

function reactionsSlot(msg, ctx) {
  const list = msg.isDeleted || msg.pending ? [] : msg.reactions || [];
  if (!list.length) return ["", null];
  const key = JSON.stringify(list);
  return [
    key,
    () =>
      h(
        "div",
        { class: "msg-reactions" },
        list.map((r) => {
          const who = names(
            r.userIds.map((id) => (id === ctx.me.id ? "you" : ctx.memberName(id))),
            8,
          );
          const mine = r.userIds.includes(ctx.me.id);
          return h(
            "button",
            {
              type: "button",
              class: `reaction${mine ? " mine" : ""}`,
              title: `${who} reacted with ${r.emoji}`,
              "aria-label": `${r.emoji} ${r.count}: ${who}`,
              "aria-pressed": mine ? "true" : "false",
              dataset: { action: "react", emoji: r.emoji },
            },
            h("span", { class: "reaction-emoji" }, r.emoji),
            h("span", { class: "reaction-count" }, String(r.count)),
          );
        }),
        h(
          "button",
          {
            type: "button",
            class: "reaction reaction-add",
            title: "Add a reaction",
            "aria-label": "Add a reaction",
            dataset: { action: "pick-emoji" },
          },
          icon("smile", 14),
        ),
      ),
  ];
}

function repliesSlot(msg, ctx) {
  if (!ctx.showReplies || msg.parentMessageId || !msg.replyCount || msg.pending) return ["", null];
  return [
    String(msg.replyCount),
    () =>
      h(
        "button",
        { type: "button", class: "msg-replies", dataset: { action: "thread" } },
        `${msg.replyCount} ${msg.replyCount === 1 ? "reply" : "replies"}`,
      ),
  ];
}

function seenSlot(msg, ctx) {
  const seen = ctx.seenBy(msg);
  if (!seen.length) return ["", null];
  return [seen.join(","), () => h("div", { class: "msg-seen" }, `Seen by ${names(seen)}`)];
}

const RENDER = {
  header: headerSlot,
  content: contentSlot,
  versions: versionsSlot,
  tools: toolsSlot,
  status: statusSlot,
  citations: citationsSlot,
  attachments: attachmentsSlot,
  reactions: reactionsSlot,
  replies: repliesSlot,
  seen: seenSlot,
};

function actions(msg, ctx) {
  if (msg.pending || msg.isDeleted) return null;
  const mine = msg.author && msg.author.id === ctx.me.id;
  const canDelete = mine || ctx.canModerate;
  const button = (action, label, icon) =>
    h(
      "button",
      { type: "button", class: "icon-btn", title: label, "aria-label": label, dataset: { action } },
      icon,
    );
  return h(
    "div",
    { class: "msg-actions", role: "toolbar", "aria-label": "Message actions" },
    button("pick-emoji", "Add a reaction", icon("smile")),
    ctx.showReplies && !msg.parentMessageId
      ? button("thread", "Reply in thread", icon("reply"))
      : null,
    msg.pinnedAt
      ? button("unpin", "Unpin", icon("pin"))
      : button("pin", "Pin to this session", icon("pin")),
    mine && msg.role === "user" ? button("edit", "Edit", icon("edit")) : null,
    mine && msg.role === "user" && ctx.hasAnswer?.(msg.id)
      ? button("resend", "Edit and resend", icon("resend"))
      : null,
    msg.role === "assistant" && msg.metadata?.streamId
      ? button("regenerate", "Regenerate", icon("refresh"))
      : null,
    canDelete ? button("delete", "Delete", icon("trash")) : null,
  );
}

/** A new element for `msg`. */
export function messageElement(msg, ctx) {
  const el = h("article", {
    class: "msg",
    dataset: { id: msg.id },
    "aria-label": `Message from ${authorName(msg, ctx)}`,
  });
  el.append(
    h(
      "div",
      { class: "msg-gutter" },
      avatar(msg, ctx),
      h("time", { class: "msg-gutter-time" }, clockTime(msg.createdAt)),
    ),
    h(
      "div",
      { class: "msg-body" },
      SLOTS.map((slot) => h("div", { class: `slot slot-${slot}` })),
    ),
  );
  el._keys = {};
  updateMessage(el, msg, ctx);
  return el;
}

/** Bring `el` up to date with `msg`, touching only what changed. */
export function updateMessage(el, msg, ctx) {
  const mine = msg.author && msg.author.id === ctx.me.id;
  el.dataset.seq = Number.isFinite(msg.seq) ? String(msg.seq) : "";
  el.dataset.author = authorKey(msg);
  el.classList.toggle("mine", Boolean(mine));
  el.classList.toggle("assistant", msg.role === "assistant");
  el.classList.toggle("deleted", Boolean(msg.isDeleted));
  el.classList.toggle("pending", Boolean(msg.pending));
  el.classList.toggle("failed", Boolean(msg.failed));
  el.classList.toggle("editing", Boolean(ctx.editing));
  el.classList.toggle("pinned", Boolean(msg.pinnedAt));
  el.classList.toggle("edited", Boolean(msg.isEdited));
  const body = el.querySelector(".msg-body");
  for (const slot of SLOTS) {
    const [key, render] = RENDER[slot](msg, ctx);
    if (el._keys[slot] === key) continue;
    el._keys[slot] = key;
    const holder = body.querySelector(`.slot-${slot}`);
    replaceChildren(holder, render ? render() : null);
    if (slot === "content" && ctx.editing) {
      const area = holder.querySelector("textarea");
      queueMicrotask(() => {
        if (!area) return;
        fitEditor(area);
        area.focus();
        area.setSelectionRange(area.value.length, area.value.length);
      });
    }
  }
  const pinned = Boolean(msg.pinnedAt);
  const answered = Boolean(ctx.hasAnswer?.(msg.id));
  const streamed = Boolean(msg.metadata?.streamId);
  const actionsKey = [msg.pending, msg.isDeleted, ctx.showReplies, msg.role, pinned, answered, streamed]
    .join("|");
  if (el._keys.actions !== actionsKey) {
    el._keys.actions = actionsKey;
    el.querySelector(".msg-actions")?.remove();
    const bar = actions(msg, ctx);
    if (bar) el.append(bar);
  }
}
