/**
 * overlays.js: the room's small floating pieces: a popover (emoji picker, confirmations),
 * toasts, and the image lightbox. One of each per page.
 */

import { h, replaceChildren } from "../dom.js";

export class Popover {
  constructor(el) {
    this.el = el;
    this.anchor = null;
    document.addEventListener("mousedown", (event) => {
      if (!this.el.hidden && !this.el.contains(event.target) && event.target !== this.anchor)
        this.close();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !this.el.hidden) {
        this.close();
        this.anchor?.focus();
      }
    });
    window.addEventListener("resize", () => this.close());
  }

  /** Show `content` next to `anchor`. */
  open(anchor, content, label) {
    this.anchor = anchor;
    replaceChildren(this.el, content);
    this.el.setAttribute("aria-label", label);
    this.el.hidden = false;
    const a = anchor.getBoundingClientRect();
    const box = this.el.getBoundingClientRect();
    const top = a.top - box.height - 6 > 8 ? a.top - box.height - 6 : a.bottom + 6;
    const left = Math.min(Math.max(8, a.right - box.width), window.innerWidth - box.width - 8);
    this.el.style.top = `${top + window.scrollY}px`;
    this.el.style.left = `${left + window.scrollX}px`;
    this.el.querySelector("button")?.focus();
  }

  close() {
    this.el.hidden = true;
    this.anchor = null;
  }

  /** A row of emoji buttons; `pick(emoji)` is called with the one chosen. */
  emoji(anchor, emojis, pick) {
    const grid = h(
      "div",
      { class: "emoji-grid" },
      emojis.map((emoji) => {
        const button = h(
          "button",
          { type: "button", class: "emoji-btn", "aria-label": `React with ${emoji}` },
          emoji,
        );
        button.addEventListener("click", () => {
          this.close();
          pick(emoji);
        });
        return button;
      }),
    );
    this.open(anchor, grid, "Pick a reaction");
  }

  /** A question with a confirm button; `yes()` runs if it is pressed. */
  confirm(anchor, question, label, yes) {
    const ok = h("button", { type: "button", class: "btn btn-sm btn-danger" }, label);
    const cancel = h("button", { type: "button", class: "btn btn-sm" }, "Cancel");
    ok.addEventListener("click", () => {
      this.close();
      yes();
    });
    cancel.addEventListener("click", () => this.close());
    this.open(
      anchor,
      h(
        "div",
        { class: "confirm" },
        h("p", {}, question),
        h("div", { class: "confirm-actions" }, cancel, ok),
      ),
      question,
    );
    ok.focus();
  }
}

export class Toasts {
  constructor(el) {
    this.el = el;
  }

  show(text, { kind = "error", ms = 6000 } = {}) {
    const toast = h(
      "div",
      { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
      text,
    );
    this.el.append(toast);
    setTimeout(() => toast.remove(), ms);
  }
}

export class Lightbox {
  constructor(dialog) {
    this.dialog = dialog;
    this.img = dialog.querySelector("img");
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close();
    });
  }

  open(src, name) {
    this.img.src = src;
    this.img.alt = name;
    this.dialog.showModal();
  }
}
