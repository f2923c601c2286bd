/**
 * room.js: the room page. Renders the session's messages and keeps them live over
 * `/ws/chat/` through `ChatClient` (session cookie, same origin).
 *
 * The page arrives with the newest messages and the session's `lastSeq` read before them
 * (chat/pages.py): joining with that `lastSeq` replays whatever happened since, so nothing
 * falls between the page and the socket. Every change then comes as an event and goes
 * through `applyMessage`, which keeps the store and the timelines (main and thread) in step.
 */

import { api } from "./api.js";
import { ChatClient } from "./chat-client.js";
import { $, h, replaceChildren } from "./dom.js";
import { dayAndTime } from "./format.js";
import { icon } from "./icons.js";
import { plainText } from "./markdown.js";
import { AnswerVersions } from "./room/answer-versions.js";
import { AssistantOptions } from "./room/assistant.js";
import { Composer } from "./room/composer.js";
import { withIndexStatus } from "./room/grounding.js";
import { bumpSession, Notifier } from "./notifications.js";
import { Members, Typing } from "./room/members.js";
import { agentMentionables, mentionRefusalText } from "./room/mentions.js";
import { authorName, QUICK_EMOJI, streamErrorText } from "./room/message-view.js";
import { Lightbox, Popover, Toasts } from "./room/overlays.js";
import { Pins, pinsView } from "./room/pins.js";
import { Timeline } from "./room/timeline.js";
import { Uploads } from "./room/uploads.js";
import { versionsView } from "./room/versions.js";

const boot = JSON.parse($("#room-data").textContent);
const sessionId = boot.session.id;
const me = boot.me;
const canModerate = me.isStaff || me.role === "owner" || me.role === "admin";
const fileRules = boot.attachments;

const client = new ChatClient({
  storage: window.localStorage,
  storageKey: `chat-outbox:${me.id}`,
});
window.chatClient = client; // for the console and for browser tests

const store = new Map(); // message id -> message (top-level and replies)
const locals = new Map(); // clientId -> optimistic message
const streamsByMessage = new Map(); // assistant message id -> stream tracker
let localOrder = 0;
let editingId = null;
let resendingEdit = false; // the edit under way is an "Edit and resend"
// The prompts that have an answer (its metadata.promptId): "Edit and resend" shows on them.
const answeredPrompts = new Set();
const answerVersions = new AnswerVersions({
  refresh: (id) => refreshSoon(id),
  failed: (text) => toasts.show(text),
});
let mySeenSeq = boot.lastSeenSeq || 0;
let myDeliveredSeq = Math.max(boot.lastDeliveredSeq || 0, mySeenSeq);
let hasOlder = boot.hasOlder;
let loadingOlder = false;

const members = new Members(
  { list: $("#member-list"), count: $("#member-count"), sub: $("#room-sub") },
  boot.members,
);
const typing = new Typing($("#typing"));
const assistant = new AssistantOptions({ defaultAgentId: boot.session.agentId });
const popover = new Popover($("#popover"));
const toasts = new Toasts($("#toasts"));
const lightbox = new Lightbox($("#lightbox"));
const uploads = new Uploads({
  rules: fileRules,
  storage: window.localStorage,
  storageKey: `chat-upload-failures:${me.id}`,
  changed: (id) => refreshSoon(id),
  attached: (message, attachment) => {
    // The server also broadcasts message:edited with it; this covers a lost broadcast.
    const current = store.get(message.id) || message;
    if (!(current.attachments || []).some((a) => a.id === attachment.id)) {
      applyMessage({ ...current, attachments: [...(current.attachments || []), attachment] });
    }
  },
  refused: (text) => toasts.show(text),
});

// --- rendering context -------------------------------------------------------------------

function lastMineId() {
  for (let i = main.items.length - 1; i >= 0; i -= 1) {
    const m = main.items[i];
    if (m.author?.id === me.id && !m.pending && !m.isDeleted) return m.id;
  }
  return null;
}

function seenBy(msg) {
  if (msg.id !== lastMineId()) return [];
  return members
    .all()
    .filter((m) => m.id !== me.id && (m.lastSeenSeq || 0) >= msg.seq)
    .map((m) => m.username);
}

/** The files of a message of mine still uploading, then those that failed to. */
function uploadsFor(msg) {
  if (msg.author?.id !== me.id || msg.isDeleted) return [];
  return uploads.of(msg);
}

function ctxFor(showReplies) {
  return (msg) => ({
    me,
    canModerate,
    showReplies,
    online: client.state === "open",
    now: () => Date.now(),
    editing: editingId === msg.id,
    resending: editingId === msg.id && resendingEdit,
    hasAnswer: (id) => answeredPrompts.has(id),
    versions: answerVersions,
    memberName: (id) => members.name(id),
    agentName: (id) => assistant.agentName(id),
    streamFor: (id) => streamsByMessage.get(id),
    uploadsFor,
    seenBy: showReplies ? seenBy : () => [],
  });
}

const main = new Timeline($("#timeline"), $("#messages"), {
  ctxFor: ctxFor(true),
  pill: $("#new-pill"),
  onStick: () => markSeenSoon(),
  onNearTop: () => loadOlder(),
});

let thread = null; // {id, timeline, composer}

function timelinesFor(msg) {
  const list = [];
  if (!msg.parentMessageId) list.push(main);
  if (thread && (msg.id === thread.id || msg.parentMessageId === thread.id))
    list.push(thread.timeline);
  return list;
}

const refreshQueue = new Set();
/** Re-render a message in every timeline showing it, at most once a frame. */
function refreshSoon(id) {
  if (!refreshQueue.size) {
    requestAnimationFrame(() => {
      for (const queued of refreshQueue) {
        main.refresh(queued);
        thread?.timeline.refresh(queued);
      }
      refreshQueue.clear();
    });
  }
  refreshQueue.add(id);
}

function refreshSeen() {
  // "Seen by" sits on my last message only; when that changes, the previous one loses it.
  main.refreshAll();
}

// --- the store ---------------------------------------------------------------------------

/** Take a message from the server (event, ack or REST) into the store and the timelines. */
function applyMessage(msg, { own = false } = {}) {
  const local = msg.clientId && msg.author?.id === me.id ? locals.get(msg.clientId) : null;
  if (local) {
    locals.delete(msg.clientId);
    main.remove(local.id);
    thread?.timeline.remove(local.id);
    own = true;
  }
  const known = store.has(msg.id);
  if (!known && msg.parentMessageId) countReply(msg);
  store.set(msg.id, msg);
  const promptId = msg.role === "assistant" ? msg.metadata?.promptId : null;
  if (promptId && !answeredPrompts.has(promptId)) {
    answeredPrompts.add(promptId);
    if (store.has(promptId)) refreshSoon(promptId);
  }
  for (const timeline of timelinesFor(msg)) timeline.upsert(msg, { own });
  if (!known && msg.author) typing.stop(msg.author); // their message is the end of typing
  if (msg.author?.id === me.id) refreshSeen();
}

/**
 * Take a message from an event. One too large for a frame comes without its text
 * (`contentOmitted`) or its metadata's lists (`metadataOmitted`): keep what is shown until
 * the whole message, fetched over REST, replaces it.
 */
function applyEventMessage(msg) {
  if (!msg.contentOmitted && !msg.metadataOmitted) return applyMessage(msg);
  const known = store.get(msg.id);
  const stream = streamsByMessage.get(msg.id);
  applyMessage({
    ...msg,
    content: msg.contentOmitted ? known?.content || stream?.text || "" : msg.content,
    metadata: msg.metadataOmitted ? { ...known?.metadata, ...msg.metadata } : msg.metadata,
  });
  api(`/api/chat/messages/${msg.id}`)
    .then((whole) => {
      const shown = store.get(whole.id);
      if (!shown || shown.updatedAt <= whole.updatedAt) applyMessage(whole);
    })
    .catch(() => toasts.show("A long message could not be loaded: reload the page to see it."));
}

function countReply(reply) {
  const parent = store.get(reply.parentMessageId);
  // A reply older than the page is already in the parent's count the page came with.
  if (!parent || reply.createdAt <= boot.renderedAt) return;
  applyMessage({ ...parent, replyCount: (parent.replyCount || 0) + 1 });
}

function patchMessage(id, change) {
  const msg = store.get(id);
  if (msg) applyMessage({ ...msg, ...change });
}

function showLocal(entry) {
  const msg = {
    id: `local:${entry.clientId}`,
    clientId: entry.clientId,
    sessionId,
    seq: null,
    localOrder: (localOrder += 1),
    author: { id: me.id, username: me.username },
    role: "user",
    content: entry.content,
    parentMessageId: entry.parentMessageId || null,
    createdAt: entry.createdAt || new Date().toISOString(),
    reactions: [],
    attachments: [],
    replyCount: 0,
    metadata: {},
    pending: true,
  };
  locals.set(entry.clientId, msg);
  for (const timeline of timelinesFor(msg)) timeline.upsert(msg, { own: true });
  return msg;
}

// --- sending -----------------------------------------------------------------------------

async function sendMessage({ text, files, parentMessageId = null }) {
  const content = text.trim() ? text.replace(/\s+$/, "") : files.map((f) => f.name).join(", ");
  const sending = client.send(sessionId, content, { parentMessageId });
  const states = uploads.expect(sending.clientId, files);
  showLocal({ clientId: sending.clientId, content, parentMessageId });
  let message;
  try {
    message = await sending;
  } catch {
    return; // outbox:failed shows why on the message itself
  }
  applyMessage(message, { own: true });
  await uploads.send(message, files, sending.clientId, states);
}

function askErrorText(error) {
  switch (error.code) {
    case "DISCONNECTED":
      return "You're offline: the question wasn't sent.";
    case "RATE_LIMITED":
      return `Too many questions: try again in ${error.retryAfter || 60} s.`;
    case "VALIDATION_ERROR":
      return error.message;
    default:
      return streamErrorText(error);
  }
}

async function ask({ text, agentId, model, parentMessageId = null }) {
  try {
    await client.askAssistant(sessionId, text.trim(), { agentId, model, parentMessageId });
  } catch (error) {
    throw new Error(askErrorText(error));
  }
}

function composerFor(container, parentMessageId = null) {
  return new Composer(container, {
    placeholder: parentMessageId ? "Reply in thread…" : `Message #${boot.session.title}`,
    assistantPlaceholder: "Ask the assistant… (everyone here sees the answer)",
    assistant,
    onSubmit: (payload) =>
      payload.mode === "assistant"
        ? ask({ ...payload, parentMessageId })
        : sendMessage({ ...payload, parentMessageId }),
    fileRules,
    onTyping: () => client.typing(sessionId),
    onIdle: () => client.stopTyping(sessionId),
    onEditLast: () => {
      const id = lastMineId();
      if (!id || store.get(id)?.role !== "user") return false;
      startEdit(id);
      return true;
    },
    mentionables: () => [
      ...agentMentionables(assistant.agents),
      ...members.all().filter((m) => m.id !== me.id),
    ],
  });
}

const composer = composerFor($("#composer"));

// --- seen receipts, unread -----------------------------------------------------------------

let seenTimer = null;
/** Tell the server what we have read: the newest message by someone else, once it is in
 * view; while it is not (tab hidden, scrolled up), that it was delivered. Watermarks: each
 * marks every earlier message too. */
function markSeenSoon() {
  clearTimeout(seenTimer);
  seenTimer = setTimeout(() => {
    const latest = [...main.items]
      .reverse()
      .find((m) => Number.isFinite(m.seq) && m.author?.id !== me.id);
    if (!latest) return;
    const inView = document.visibilityState === "visible" && main.stick;
    if (inView && latest.seq > mySeenSeq) client.markSeen(latest.id).then(moved, () => {});
    else if (!inView && latest.seq > myDeliveredSeq) {
      client.markDelivered(latest.id).then(moved, () => {});
    }
  }, 600);
}

/** My watermarks after a receipt's ack, or a `receipts:update` from my other tabs. */
function moved({ deliveredSeq, seenSeq }) {
  myDeliveredSeq = Math.max(myDeliveredSeq, deliveredSeq);
  mySeenSeq = Math.max(mySeenSeq, seenSeq);
}

client.on("receipts:update", ({ sessionId: session, readers }) => {
  if (session !== sessionId) return;
  let seenMoved = false;
  for (const reader of readers) {
    if (reader.userId === me.id) moved(reader);
    else if (members.receipts(reader)) seenMoved = true;
  }
  if (seenMoved) refreshSeen();
});

document.addEventListener("visibilitychange", markSeenSoon);
window.addEventListener("focus", markSeenSoon);

// --- older messages, search, threads -------------------------------------------------------

const OLDER_PAGE = 50;
// The server serves and counts at most this many matches: a total of it means "or more".
const SEARCH_MATCHES_MAX = 1000;

let olderInFlight = null;
/** Load the page before the oldest message shown; a call while one loads waits for it (a
 * jump to an old message and a scroll to the top may both ask). */
function loadOlder() {
  olderInFlight ||= loadOlderPage().finally(() => {
    olderInFlight = null;
  });
  return olderInFlight;
}

async function loadOlderPage() {
  if (!hasOlder || loadingOlder || main.oldestSeq === null) return;
  loadingOlder = true;
  $("#load-older").disabled = true;
  try {
    const page = await api(
      `/api/chat/sessions/${sessionId}/messages?beforeSeq=${main.oldestSeq}&limit=${OLDER_PAGE}`,
    );
    // What arrived live meanwhile is newer than this page of history: keep it.
    const older = page.messages.filter((msg) => !store.has(msg.id));
    for (const msg of older) store.set(msg.id, msg);
    main.prepend(older);
    // `total` counts the whole timeline, not what is left before the cursor: a short page
    // is the start.
    hasOlder = page.messages.length === OLDER_PAGE;
  } catch (error) {
    toasts.show(`Couldn't load older messages: ${error.message}`);
  } finally {
    loadingOlder = false;
    $("#load-older").disabled = false;
    showTimelineStart();
  }
}

function showTimelineStart() {
  $("#load-older").hidden = !hasOlder;
  $("#timeline-start").hidden = hasOlder;
}

$("#load-older").addEventListener("click", loadOlder);

function openPanel(title, ...content) {
  $("#panel-title").textContent = title;
  replaceChildren($("#panel-body"), ...content);
  $("#panel").hidden = false;
  $("#room").classList.add("with-panel");
}

function closePanel() {
  // A closed search leaves no query behind in the box.
  if ($("#panel-title").textContent === "Search") $("#search-input").value = "";
  $("#panel").hidden = true;
  $("#room").classList.remove("with-panel");
  replaceChildren($("#panel-body"));
  thread = null;
  $("#pins-toggle").setAttribute("aria-expanded", "false");
}

$("#panel-close").addEventListener("click", closePanel);

// On a narrow screen the sidebar is a drawer over the room: it closes with its ✕, a tap
// outside it, or Escape, and gives the focus back to the button that opened it.
function setSidebar(open) {
  const room = $("#room");
  if (open === room.classList.contains("show-sidebar")) return;
  room.classList.toggle("show-sidebar", open);
  $("#sidebar-backdrop").hidden = !open;
  $("#sidebar-toggle").setAttribute("aria-expanded", String(open));
  if (open) $("#sidebar-close").focus();
  else $("#sidebar-toggle").focus();
}

$("#sidebar-toggle").addEventListener("click", () =>
  setSidebar(!$("#room").classList.contains("show-sidebar")),
);
$("#sidebar-close").addEventListener("click", () => setSidebar(false));
$("#sidebar-backdrop").addEventListener("click", () => setSidebar(false));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && $("#room").classList.contains("show-sidebar")) setSidebar(false);
});

async function openThread(id) {
  const scroller = h("div", { class: "thread-scroll" });
  const list = h("div", { class: "messages thread-messages" });
  const composerBox = h("div", { class: "composer-wrap composer-thread" });
  scroller.append(list);
  openPanel("Thread", scroller, composerBox);
  const timeline = new Timeline(scroller, list, { ctxFor: ctxFor(false), onStick: markSeenSoon });
  thread = { id, timeline, composer: composerFor(composerBox, id) };
  const current = thread;
  try {
    const parent = store.get(id) || (await api(`/api/chat/messages/${id}`));
    const replies = await api(`/api/chat/messages/${id}/thread`);
    if (thread !== current) return;
    for (const reply of replies) store.set(reply.id, reply);
    // The thread itself is the count's truth: it corrects any drift in the parent's.
    applyMessage({ ...parent, replyCount: replies.length });
    for (const reply of replies) timeline.upsert(reply, { quiet: true });
    // Locally pending replies to this thread stay visible in it.
    for (const local of locals.values()) {
      if (local.parentMessageId === id) timeline.upsert(local, { quiet: true });
    }
    timeline.scrollToBottom();
    current.composer.focus();
  } catch (error) {
    toasts.show(`Couldn't open the thread: ${error.message}`);
  }
}

function highlight(text, query) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return [text];
  const pattern = new RegExp(
    `(${words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`,
    "gi",
  );
  return text.split(pattern).map((part, i) => (i % 2 ? h("mark", {}, part) : part));
}

async function search(query) {
  openPanel("Search", h("p", { class: "muted panel-note" }, "Searching…"));
  try {
    const page = await api(
      `/api/chat/sessions/${sessionId}/search?query=${encodeURIComponent(query)}&limit=50`,
    );
    const results = page.results.map((msg) => {
      // One line per paragraph or list item (the snippet keeps its line breaks).
      const text = plainText(msg.content);
      const snippet = text.length > 220 ? `${text.slice(0, 219)}…` : text;
      const button = h(
        "button",
        { type: "button", class: "search-hit" },
        h(
          "span",
          { class: "search-meta" },
          h("strong", {}, authorName(msg, { agentName: (aid) => assistant.agentName(aid) })),
          h(
            "time",
            { datetime: msg.createdAt },
            dayAndTime(msg.createdAt),
          ),
          msg.parentMessageId ? h("span", { class: "tag" }, "in a thread") : null,
        ),
        h("span", { class: "search-snippet" }, highlight(snippet, query)),
      );
      button.addEventListener("click", () => jumpTo(msg));
      return h("li", {}, button);
    });
    openPanel(
      "Search",
      h(
        "p",
        { class: "muted panel-note" },
        `${page.total >= SEARCH_MATCHES_MAX ? `${page.total}+` : page.total} ` +
          `result${page.total === 1 ? "" : "s"} for “${query}”`,
      ),
      results.length
        ? h("ul", { class: "search-results" }, results)
        : h("p", { class: "empty-note" }, "Nothing found."),
    );
  } catch (error) {
    openPanel("Search", h("p", { class: "error" }, `Search failed: ${error.message}`));
  }
}

$("#search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const query = $("#search-input").value.trim();
  if (query) search(query);
});

async function jumpTo(msg) {
  if (msg.parentMessageId) {
    await openThread(msg.parentMessageId);
    thread?.timeline.flash(msg.id);
    return;
  }
  for (let pages = 0; !main.has(msg.id) && hasOlder && pages < 20; pages += 1) await loadOlder();
  if (!main.flash(msg.id))
    toasts.show("That message isn't in the timeline any more.", { kind: "info" });
}

// --- message actions (delegated clicks) ----------------------------------------------------

function startEdit(id, { resend = false } = {}) {
  const previous = editingId;
  editingId = id;
  resendingEdit = resend;
  if (previous) refreshSoon(previous);
  main.refresh(id);
  thread?.timeline.refresh(id);
}

function stopEdit() {
  const id = editingId;
  editingId = null;
  resendingEdit = false;
  if (id) {
    main.refresh(id);
    thread?.timeline.refresh(id);
  }
}

async function saveEdit(el) {
  const id = el.dataset.id;
  const value = el.querySelector(".edit-input").value;
  const msg = store.get(id);
  if (resendingEdit && value.trim()) return resend(id, value);
  if (!value.trim() || value === msg?.content) return stopEdit();
  try {
    applyMessage(await client.edit(id, value));
    stopEdit();
  } catch (error) {
    toasts.show(`Couldn't save the edit: ${error.message}`);
  }
}

/** Edit a prompt and answer it again: the edit and the new version arrive as events. */
async function resend(id, value) {
  try {
    await client.resend(id, value);
    stopEdit();
  } catch (error) {
    toasts.show(`Couldn't resend: ${error.message}`);
  }
}

function regenerate(id) {
  client.regenerate(id).catch((error) => toasts.show(`Couldn't regenerate: ${error.message}`));
}

async function react(id, emoji) {
  try {
    const result = await client.react(id, emoji);
    patchMessage(id, { reactions: result.reactions });
  } catch (error) {
    toasts.show(`Couldn't react: ${error.message}`);
  }
}

function onTimelineClick(event) {
  const button = event.target.closest("[data-action]");
  const el = event.target.closest(".msg");
  if (!button || !el) return;
  const id = el.dataset.id;
  const action = button.dataset.action;
  switch (action) {
    case "react":
      react(id, button.dataset.emoji);
      break;
    case "pick-emoji":
      popover.emoji(button, QUICK_EMOJI, (emoji) => react(id, emoji));
      break;
    case "thread":
      openThread(id);
      break;
    case "edit":
      startEdit(id);
      break;
    case "resend":
      startEdit(id, { resend: true });
      break;
    case "regenerate":
      regenerate(id);
      break;
    case "version-prev":
    case "version-next":
      if (store.has(id)) answerVersions.step(store.get(id), action === "version-next" ? 1 : -1);
      break;
    case "edit-cancel":
      stopEdit();
      break;
    case "edit-save":
      saveEdit(el);
      break;
    case "delete":
      popover.confirm(button, "Delete this message for everyone?", "Delete", () =>
        client.delete(id).then(
          () => {
            uploads.forget(id);
            patchMessage(id, { isDeleted: true, content: "", reactions: [], attachments: [] });
          },
          (error) => toasts.show(`Couldn't delete: ${error.message}`),
        ),
      );
      break;
    case "stop":
      button.disabled = true;
      button.textContent = "Stopping…";
      client.stopStream(button.dataset.stream).catch((error) => {
        button.disabled = false;
        replaceChildren(button, icon("stop", 12), "Stop");
        toasts.show(`Couldn't stop the answer: ${error.message}`);
      });
      break;
    case "pin":
    case "unpin":
      pinToggle(id, action === "pin");
      break;
    case "history":
      openVersions(id);
      break;
    case "open-image":
      lightbox.open(button.dataset.src, button.dataset.name);
      break;
    case "upload-again":
      if (store.has(id)) uploads.again(store.get(id), button.dataset.name);
      break;
    case "upload-remove":
      uploads.dismiss(id, button.dataset.name);
      break;
    case "discard":
    case "restore": {
      const local = [...locals.values()].find((m) => m.id === id);
      if (!local) break;
      client.discard(local.clientId);
      locals.delete(local.clientId);
      main.remove(id);
      thread?.timeline.remove(id);
      if (action === "restore") composer.setText(local.content);
      break;
    }
    default:
      break;
  }
}

function onTimelineKeydown(event) {
  if (!event.target.classList.contains("edit-input")) return;
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    saveEdit(event.target.closest(".msg"));
  } else if (event.key === "Escape") {
    event.preventDefault();
    stopEdit();
  }
}

for (const root of [$("#messages"), $("#panel-body")]) {
  root.addEventListener("click", onTimelineClick);
  root.addEventListener("keydown", onTimelineKeydown);
}

// --- live events -------------------------------------------------------------------------

client.on("message:new", ({ message }) => {
  applyEventMessage(message);
  if (message.author?.id !== me.id) markSeenSoon();
});
client.on("message:edited", ({ message }) => applyEventMessage(message));
client.on("attachment:index", (data) => {
  const msg = store.get(data.messageId);
  if (msg) patchMessage(msg.id, { attachments: withIndexStatus(msg.attachments, data) });
});
client.on("message:deleted", ({ messageId }) =>
  patchMessage(messageId, { isDeleted: true, content: "", reactions: [], attachments: [] }),
);
client.on("message:reaction:update", ({ messageId, reactions }) =>
  patchMessage(messageId, { reactions }),
);
client.on("typing:update", ({ sessionId: id, started, stopped }) => {
  if (id === sessionId) typing.update(started.filter((u) => u.id !== me.id), stopped);
});
client.on("presence:changes", ({ changes }) => members.setPresenceAll(changes));
client.on("session:joined", (ack) => {
  if (ack.sessionId !== sessionId) return;
  $("#room").dataset.joined = "true"; // the room is live (browser tests wait for this)
  showConnection();
  members.merge(ack.members || []);
  // Receipts are not queued while offline: the join's watermarks are the truth.
  const mine = (ack.members || []).find((m) => m.id === me.id);
  if (mine) moved({ deliveredSeq: mine.lastDeliveredSeq || 0, seenSeq: mine.lastSeenSeq || 0 });
  refreshSeen();
  members.setPresenceAll(ack.presence || []);
  // A room too large for one reply lists some of its members: the rest come over REST.
  if (ack.membersOmitted) {
    api(`/api/chat/sessions/${sessionId}/presence`)
      .then((all) => members.setPresenceAll(all))
      .catch(() => {});
  }
});
client.on("stream:update", (stream) => {
  if (stream.sessionId && stream.sessionId !== sessionId) return;
  streamsByMessage.set(stream.messageId, stream);
  refreshSoon(stream.messageId);
});
client.on("stream:error", (data) => {
  // No streamId: an @assistant of ours that could not start an answer (sent to us alone).
  if (!data.streamId) toasts.show(mentionRefusalText(data));
  else if (!store.has(data.messageId)) toasts.show(streamErrorText(data));
});
client.on("outbox", (entries) => {
  // Messages left unsent by an earlier page (kept in localStorage) show as pending again.
  for (const entry of entries) {
    if (entry.sessionId === sessionId && !locals.has(entry.clientId)) showLocal(entry);
  }
});
client.on("outbox:sent", ({ message }) => applyMessage(message, { own: true }));
client.on("outbox:failed", ({ entry, error }) => {
  const local = locals.get(entry.clientId);
  if (!local) return;
  local.failed = error.message;
  main.refresh(local.id);
  thread?.timeline.refresh(local.id);
});

// "Live" only once the session is joined: before that (or while a join or a reconnect waits
// out a limit) the room's live events don't come, and the header says so.
const STATE_TEXT = {
  connecting: "Connecting…",
  open: "Joining…",
  reconnecting: "Reconnecting…",
  closed: "Offline",
};
let waitTimer = null;

function setChip(state, label) {
  const chip = $("#conn-state");
  chip.dataset.state = state;
  chip.title = label; // on a phone only the dot shows: the label is its tooltip
  replaceChildren(chip, h("span", { class: "conn-label" }, label));
}

function showConnection() {
  clearInterval(waitTimer);
  const { state } = client;
  const live = state === "open" && $("#room").dataset.joined === "true";
  setChip(live ? "open" : state, live ? "Live" : STATE_TEXT[state] || state);
}

/** A wait the server asked for: "<text> <n> s", counting down until the state changes. */
function showWait(text, seconds) {
  clearInterval(waitTimer);
  const until = Date.now() + seconds * 1000;
  const tick = () => {
    const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    setChip("waiting", `${text} ${left} s`);
  };
  tick();
  waitTimer = setInterval(tick, 1000);
}

client.on("session:waiting", ({ sessionId: id, retryAfter }) => {
  if (id !== sessionId) return;
  delete $("#room").dataset.joined;
  showWait("Too many rejoins · live again in", retryAfter);
});
client.on("reconnecting", ({ reason, delayMs }) => {
  if (reason === "RATE_LIMITED") showWait("Too many connections · retrying in", delayMs / 1000);
});
client.on("state", (state) => {
  if (state !== "open") delete $("#room").dataset.joined;
  showConnection();
  const chip = $("#conn-state");
  if (state === "closed" && client.closeReason?.code === "UNAUTHORIZED") {
    chip.title = "Logged out";
    replaceChildren(
      chip,
      h(
        "span",
        { class: "conn-label conn-label-keep" },
        "Logged out · ",
        h("a", { href: `/login/?next=${encodeURIComponent(location.pathname)}` }, "log in"),
      ),
    );
  }
  // Pending messages say whether they wait for the connection.
  for (const local of locals.values()) refreshSoon(local.id);
});

// --- pins and edit history ------------------------------------------------------------------

const PINS_TITLE = "Pinned messages";
const pins = new Pins({ sessionId, changed: () => showPins() });
$("#pins-toggle").prepend(icon("pin", 16));
showPins();

function pinsShown() {
  return !$("#panel").hidden && $("#panel-title").textContent === PINS_TITLE;
}

/** The header's count, and the panel's list if it is open. */
function showPins() {
  $("#pins-count").textContent = String(pins.size);
  $("#pins-count").hidden = pins.size === 0;
  $("#pins-toggle").setAttribute("aria-expanded", String(pinsShown()));
  if (!pinsShown()) return;
  const view = pinsView(pins.list(), {
    open: (msg) => jumpTo(msg),
    unpin: (id) => pinToggle(id, false),
    authorName: (msg) => authorName(msg, { agentName: (aid) => assistant.agentName(aid) }),
  });
  replaceChildren($("#panel-body"), h("div", { class: "pins-scroll" }, view));
}

$("#pins-toggle").addEventListener("click", () => {
  if (pinsShown()) return closePanel();
  thread = null;
  openPanel(PINS_TITLE);
  showPins();
  if (!pins.loaded) pins.load().catch(() => {});
});

async function pinToggle(id, pin) {
  try {
    const ack = pin ? await client.pin(id) : await client.unpin(id);
    patchMessage(id, { pinnedAt: ack.pinnedAt, pinnedBy: ack.pinnedBy });
    if (ack.pinned) pins.pinned({ ...ack, message: store.get(id) });
    else pins.unpinned(id);
  } catch (error) {
    toasts.show(`Couldn't ${pin ? "pin" : "unpin"} the message: ${error.message}`);
  }
}

async function openVersions(id) {
  thread = null;
  openPanel("Edit history", h("p", { class: "muted panel-note" }, "Loading the versions…"));
  try {
    const history = await api(`/api/chat/messages/${id}/history`);
    if ($("#panel-title").textContent !== "Edit history") return;
    const msg = store.get(id);
    const who = msg ? authorName(msg, { agentName: (aid) => assistant.agentName(aid) }) : null;
    openPanel(
      "Edit history",
      who ? h("p", { class: "muted panel-note" }, `A message by ${who}`) : null,
      h("div", { class: "pins-scroll" }, versionsView(history)),
    );
  } catch (error) {
    const text = `Couldn't load the versions: ${error.message}`;
    openPanel("Edit history", h("p", { class: "error" }, text));
  }
}

// A message too large for a frame comes without its text (contentOmitted): the store's copy
// has it, once applyEventMessage has merged the two.
client.on("message:pinned", (data) => {
  if (store.has(data.messageId)) applyEventMessage(data.message);
  pins.pinned({ ...data, message: store.get(data.messageId) || data.message });
});
client.on("message:unpinned", ({ messageId }) => {
  patchMessage(messageId, { pinnedAt: null, pinnedBy: null });
  pins.unpinned(messageId);
});
client.on("message:edited", ({ message }) => pins.updated(store.get(message.id) || message));
client.on("message:deleted", ({ messageId }) => {
  patchMessage(messageId, { pinnedAt: null, pinnedBy: null });
  pins.updated({ id: messageId, isDeleted: true });
});
// Every (re)join reads the list afresh: what changed while away is in it.
client.on("session:joined", (ack) => {
  if (ack.sessionId === sessionId) pins.load().catch(() => {});
});

// --- notifications ---------------------------------------------------------------------------

// Other sessions' rows in the sidebar count up; this room shows its messages itself. While
// the tab is hidden, any notification counts in the title and may show a browser one.
new Notifier({
  client,
  roomUrl: (id) => `/rooms/${id}/`,
  arrived: ({ sessionId: id, message, mentioned }) => {
    if (id !== sessionId) bumpSession(id, { message, mentioned });
  },
});

const notifySelect = $("#notify-select");
notifySelect.value = boot.notify || "mentions";
notifySelect.dataset.saved = notifySelect.value;
notifySelect.addEventListener("change", async () => {
  try {
    const ack = await client.request("session:notify", { sessionId, notify: notifySelect.value });
    notifySelect.dataset.saved = ack.notify;
  } catch (error) {
    notifySelect.value = notifySelect.dataset.saved;
    toasts.show(`Couldn't change notifications: ${error.message}`);
  }
});

/** `#message-<id>` (a link from the mentions page or a notification): scroll to it. */
async function jumpToHash() {
  const match = /^#message-([0-9a-f-]{36})$/i.exec(window.location.hash);
  if (!match) return;
  try {
    await jumpTo(store.get(match[1]) || (await api(`/api/chat/messages/${match[1]}`)));
  } catch (error) {
    toasts.show(`Couldn't show that message: ${error.message}`);
  }
}

window.addEventListener("hashchange", jumpToHash);

// --- start ---------------------------------------------------------------------------------

function start() {
  for (const msg of boot.messages) {
    store.set(msg.id, msg);
    main.upsert(msg, { quiet: true });
  }
  for (const entry of client.outbox) {
    if (entry.sessionId === sessionId) showLocal(entry);
  }
  showTimelineStart();
  const firstUnread = boot.messages.find(
    (m) => m.seq > (boot.lastSeenSeq || 0) && m.author?.id !== me.id,
  );
  const divider = firstUnread ? main.markUnreadAfter(boot.lastSeenSeq || 0) : null;
  requestAnimationFrame(() => {
    // As much of what is new as fits: the bottom, unless that hides the unread line.
    main.scrollToBottom();
    const timeline = $("#timeline");
    if (divider && divider.offsetTop - 8 < timeline.scrollTop) {
      timeline.scrollTop = divider.offsetTop - 8;
      main.stick = false;
    }
  });
  assistant.onChange(() => {
    main.refreshAll();
    thread?.timeline.refreshAll();
  });
  assistant.load();
  client.connect().catch(() => {});
  client.joinSession(sessionId, { lastSeq: boot.session.lastSeq }).catch((error) => {
    toasts.show(`Couldn't join the session: ${error.message}`);
  });
  composer.focus();
  requestAnimationFrame(jumpToHash);
}

start();
