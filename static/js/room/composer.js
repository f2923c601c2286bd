/**
 * composer.js: where a message (or a question for the assistant) is written.
 *
 * Enter sends, Shift+Enter starts a new line. Files can be picked, dropped or pasted; they
 * upload after the message is sent (an attachment belongs to a stored message), so each is
 * checked as it is picked (file-check.js) and one that can't be attached never becomes a
 * chip. In "assistant" mode Enter asks the assistant instead, with the chosen agent and model.
 */

import { h, replaceChildren } from "../dom.js";
import { fileSize } from "../format.js";
import { icon } from "../icons.js";
import { fileRefusal } from "./file-check.js";
import { MentionComplete } from "./mentions.js";

let composerCount = 0;

export class Composer {
  /**
   * @param {HTMLElement} container
   * @param {object} options {placeholder, assistantPlaceholder, assistant (AssistantOptions
   *   or null), fileRules ({maxBytes, types, typesText}: what may be attached),
   *   onSubmit({text, files, mode, agentId, model}) -> Promise|void, onTyping(), onIdle(),
   *   onEditLast(), mentionables() -> [{id, username}]: who `@` completes}
   */
  constructor(container, options) {
    this.options = options;
    this.files = [];
    this.checking = Promise.resolve();
    this.mode = "message";
    const id = `composer-${(composerCount += 1)}`;

    this.textarea = h("textarea", {
      id,
      class: "composer-input",
      rows: "1",
      placeholder: options.placeholder,
      "aria-label": options.placeholder,
      maxlength: "10000",
    });
    this.fileInput = h("input", { type: "file", multiple: true, hidden: true, tabindex: "-1" });
    this.fileList = h("ul", {
      class: "composer-files",
      hidden: true,
      "aria-label": "Files to send",
    });
    this.error = h("div", { class: "composer-error", role: "alert", hidden: true });
    this.sendButton = h(
      "button",
      { type: "submit", class: "btn btn-primary composer-send", title: "Send (Enter)" },
      "Send",
    );
    this.attachButton = h(
      "button",
      {
        type: "button",
        class: "icon-btn composer-attach",
        title: "Attach files",
        "aria-label": "Attach files",
      },
      icon("paperclip", 18),
    );
    this.modeButtons = {};
    const modes = h("div", { class: "composer-modes", role: "tablist", "aria-label": "Send as" });
    if (options.assistant) {
      for (const [mode, label] of [
        ["message", "Message"],
        ["assistant", "Ask the assistant"],
      ]) {
        const button = h(
          "button",
          { type: "button", role: "tab", class: "mode-btn", dataset: { mode } },
          mode === "assistant" ? icon("sparkles", 13) : null,
          label,
        );
        button.addEventListener("click", () => this.setMode(mode));
        this.modeButtons[mode] = button;
        modes.append(button);
      }
    }
    this.assistantRow = options.assistant ? options.assistant.controls() : null;
    this.form = h(
      "form",
      { class: "composer", autocomplete: "off" },
      options.assistant ? h("div", { class: "composer-top" }, modes, this.assistantRow) : null,
      this.fileList,
      h(
        "div",
        { class: "composer-row" },
        this.attachButton,
        this.fileInput,
        this.textarea,
        this.sendButton,
      ),
      this.error,
      h(
        "div",
        { class: "composer-hint" },
        h("kbd", {}, "Enter"),
        " to send · ",
        h("kbd", {}, "Shift"),
        "+",
        h("kbd", {}, "Enter"),
        " for a new line",
      ),
    );
    container.append(this.form);
    if (options.mentionables) {
      this.mentions = new MentionComplete(this.textarea, this.form, options.mentionables);
    }
    this.setMode("message");

    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.textarea.addEventListener("keydown", (event) => this._keydown(event));
    this.textarea.addEventListener("input", () => {
      this._grow();
      this.hideError();
      if (this.mode === "message" && this.textarea.value.trim()) options.onTyping?.();
      if (!this.textarea.value.trim()) options.onIdle?.();
    });
    this.textarea.addEventListener("paste", (event) => {
      const files = [...(event.clipboardData?.files || [])];
      if (files.length) {
        event.preventDefault();
        this.addFiles(files);
      }
    });
    this.attachButton.addEventListener("click", () => this.fileInput.click());
    this.fileInput.addEventListener("change", () => {
      this.addFiles([...this.fileInput.files]);
      this.fileInput.value = "";
    });
    for (const type of ["dragenter", "dragover"]) {
      this.form.addEventListener(type, (event) => {
        if ([...(event.dataTransfer?.types || [])].includes("Files")) {
          event.preventDefault();
          this.form.classList.add("dropping");
        }
      });
    }
    this.form.addEventListener("dragleave", () => this.form.classList.remove("dropping"));
    this.form.addEventListener("drop", (event) => {
      this.form.classList.remove("dropping");
      if (event.dataTransfer?.files?.length) {
        event.preventDefault();
        this.addFiles([...event.dataTransfer.files]);
      }
    });
  }

  setMode(mode) {
    this.mode = mode;
    this.form.classList.toggle("mode-assistant", mode === "assistant");
    for (const [name, button] of Object.entries(this.modeButtons)) {
      button.setAttribute("aria-selected", String(name === mode));
      button.classList.toggle("active", name === mode);
    }
    if (this.assistantRow) this.assistantRow.hidden = mode !== "assistant";
    this.attachButton.hidden = mode === "assistant";
    const placeholder =
      mode === "assistant" ? this.options.assistantPlaceholder : this.options.placeholder;
    this.textarea.placeholder = placeholder;
    this.textarea.setAttribute("aria-label", placeholder);
    this.sendButton.textContent = mode === "assistant" ? "Ask" : "Send";
    if (mode === "assistant") this.options.assistant?.load();
  }

  focus() {
    this.textarea.focus();
  }

  setText(text) {
    this.textarea.value = text;
    this._grow();
    this.focus();
  }

  /** Take the files that can be attached; say why each of the others can't. */
  addFiles(files) {
    this.checking = this.checking.then(async () => {
      const refusals = [];
      for (const file of files) {
        const refusal = await fileRefusal(file, this.options.fileRules);
        if (refusal) refusals.push(refusal);
        else this.files.push(file);
      }
      this._renderFiles();
      if (refusals.length) this.showError(refusals.join(" "));
      else this.hideError();
      this.focus();
    });
    return this.checking;
  }

  _renderFiles() {
    this.fileList.hidden = this.files.length === 0;
    replaceChildren(
      this.fileList,
      this.files.map((file, index) => {
        const remove = h(
          "button",
          { type: "button", class: "chip-remove", "aria-label": `Remove ${file.name}` },
          "×",
        );
        remove.addEventListener("click", () => {
          this.files.splice(index, 1);
          this._renderFiles();
        });
        return h(
          "li",
          { class: "chip" },
          icon("paperclip", 12),
          h("span", {}, file.name),
          h("small", {}, fileSize(file.size)),
          remove,
        );
      }),
    );
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = false;
  }

  hideError() {
    this.error.hidden = true;
  }

  _keydown(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit();
    } else if (event.key === "ArrowUp" && !this.textarea.value && this.mode === "message") {
      if (this.options.onEditLast?.()) event.preventDefault();
    } else if (event.key === "Escape" && this.mode === "assistant") {
      this.setMode("message");
    }
  }

  _grow() {
    // Grow with the text up to the CSS max-height, then scroll inside.
    this.textarea.style.height = "auto";
    this.textarea.style.height = `${this.textarea.scrollHeight}px`;
  }

  async submit() {
    await this.checking; // files being checked go with this message, or are refused first
    const text = this.textarea.value;
    if (!text.trim() && !this.files.length) return;
    const files = this.mode === "message" ? this.files.slice() : [];
    const payload = { text, files, mode: this.mode, ...(this.options.assistant?.choice() || {}) };
    this.textarea.value = "";
    this.files = [];
    this._renderFiles();
    this._grow();
    this.hideError();
    this.options.onIdle?.();
    try {
      await this.options.onSubmit(payload);
    } catch (error) {
      // Refused before anything was shown (e.g. the assistant request): give the text back.
      if (!this.textarea.value) this.setText(text);
      this.showError(error.message || String(error));
    }
  }
}
