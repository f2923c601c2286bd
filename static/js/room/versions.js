/**
 * versions.js: a message's edit history, as "(edited)" opens it: every version of its text
 * (`GET /api/chat/messages/:id/history`), oldest first, the current one last.
 */

import { h } from "../dom.js";
import { dayAndTime, fullTime } from "../format.js";
import { renderMarkdown } from "../markdown.js";

function label(index, count) {
  if (index === count - 1) return "Current";
  return index === 0 ? "Original" : `Edit ${index}`;
}

/** The panel's content for `{messageId, versions}`. */
export function versionsView({ versions }) {
  if (!versions.length) {
    return h("p", { class: "empty-note" }, "This message was deleted: its versions are gone.");
  }
  return h(
    "ol",
    { class: "version-list", "aria-label": "Versions, oldest first" },
    versions.map((version, index) =>
      h(
        "li",
        { class: `version${index === versions.length - 1 ? " version-current" : ""}` },
        h(
          "div",
          { class: "search-meta" },
          h("strong", {}, label(index, versions.length)),
          h(
            "time",
            { datetime: version.at, title: fullTime(version.at) },
            dayAndTime(version.at),
          ),
          version.editedBy
            ? h("span", { class: "muted" }, `by ${version.editedBy.username}`)
            : null,
        ),
        h("div", { class: "msg-content markdown" }, renderMarkdown(version.content)),
      ),
    ),
  );
}
