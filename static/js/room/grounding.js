/**
 * grounding.js: answers grounded in the room's files, as the room shows them.
 *
 * An uploaded text, Markdown, CSV or PDF file is indexed for the assistant off the request
 * path; its attachment says where that stands (`indexStatus`, `indexError`), live through
 * `attachment:index` events. An answer that was given passages of files lists them under
 * its text (`metadata.citations`), each linking to the file's download.
 */

import { h } from "../dom.js";
import { icon } from "../icons.js";

const STATUS_TEXT = {
  pending: "Indexing…",
  indexing: "Indexing…",
  ready: "Indexed",
};

/** The attachment's indexing status as a small line, or null if it is not indexed. */
export function indexStatusNode(a) {
  const status = a.indexStatus || "";
  if (!status) return null;
  if (status === "failed") {
    const reason = a.indexError || "unknown error";
    return h(
      "span",
      { class: "index-status index-failed", dataset: { indexStatus: status }, title: reason },
      `Couldn't index: ${reason}`,
    );
  }
  return h(
    "span",
    {
      class: `index-status index-${status}`,
      dataset: { indexStatus: status },
      title:
        status === "ready"
          ? "The assistant can quote this file"
          : "The assistant will be able to quote this file once it is indexed",
    },
    STATUS_TEXT[status] || status,
  );
}

/** The message's attachments with one of them updated by an `attachment:index` event. */
export function withIndexStatus(attachments, { attachmentId, indexStatus, indexError }) {
  return (attachments || []).map((a) =>
    a.id === attachmentId ? { ...a, indexStatus, indexError } : a,
  );
}

function passagesLabel(passages) {
  const shown = (passages || []).map((index) => index + 1);
  if (!shown.length) return "";
  return `${shown.length === 1 ? "passage" : "passages"} ${shown.join(", ")}`;
}

/** The message-view slot of an answer's citations: `[key, render]`. */
export function citationsSlot(msg) {
  const list = msg.isDeleted || msg.role !== "assistant" ? [] : msg.metadata?.citations || [];
  if (!list.length) return ["", null];
  return [
    JSON.stringify(list),
    () =>
      h(
        "div",
        { class: "msg-citations", "aria-label": "Files this answer was given" },
        h("span", { class: "citations-label" }, icon("file", 14), "Sources"),
        list.map((c) =>
          h(
            "a",
            {
              class: "citation",
              href: `/api/chat/attachments/${encodeURIComponent(c.attachmentId)}/download`,
              download: c.fileName,
              title: passagesLabel(c.passages),
              dataset: { attachment: c.attachmentId },
            },
            h("span", { class: "citation-name" }, c.fileName),
            h("span", { class: "citation-passages" }, passagesLabel(c.passages)),
          ),
        ),
      ),
  ];
}
