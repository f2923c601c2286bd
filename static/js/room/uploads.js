/**
 * uploads.js: a message's files on their way to the server, and those that didn't make it.
 *
 * A file uploads after its message is stored (an attachment belongs to a stored message),
 * one at a time: each attaching is a write to the message, and writes to one message in
 * parallel only contend (on SQLite one of them loses). Progress is kept per message (under
 * its clientId until the server knows it); a failure is kept in `UploadFailures`, so its
 * sender still sees it after a reload, with Attach again and Remove.
 */

import { uploadAttachment } from "../api.js";
import { h } from "../dom.js";
import { fileRefusal, uploadErrorText } from "./file-check.js";
import { UploadFailures } from "./upload-failures.js";

export class Uploads {
  /**
   * @param {object} options {rules ({maxBytes, types, typesText}), storage, storageKey,
   *   changed(messageId): re-render it, attached(message, attachment), refused(text)}
   */
  constructor({ rules, storage, storageKey, changed, attached, refused }) {
    this.rules = rules;
    this.changed = changed;
    this.attached = attached;
    this.refused = refused;
    this.running = new Map(); // clientId or message id -> [{name, size, progress}]
    this.failures = new UploadFailures(storage, storageKey);
    this.picker = h("input", { type: "file", hidden: true, tabindex: "-1" });
    document.body.append(this.picker);
  }

  /** The files of `msg` still uploading, then those that failed to. */
  of(msg) {
    return [
      ...((msg.clientId && this.running.get(msg.clientId)) || []),
      ...(this.running.get(msg.id) || []),
      ...this.failures.list(msg.id).map((failure) => ({ ...failure, failed: true })),
    ];
  }

  /** Show `files` as uploading under `key` (a message not yet acked has only its clientId). */
  expect(key, files) {
    const states = files.map((file) => ({ name: file.name, size: file.size, progress: 0 }));
    if (states.length) this.running.set(key, [...(this.running.get(key) || []), ...states]);
    return states;
  }

  /** Upload `files` to the stored `message`, one after another. */
  async send(message, files, key, states) {
    for (const [i, file] of files.entries()) await this._upload(message, file, key, states[i]);
  }

  async _upload(message, file, key, state) {
    try {
      const attachment = await uploadAttachment(message.id, file, (progress) => {
        state.progress = progress;
        this.changed(message.id);
      });
      this.attached(message, attachment);
    } catch (error) {
      this.failures.add(message.id, {
        name: file.name,
        size: file.size,
        error: uploadErrorText(error, this.rules),
      });
    } finally {
      const left = (this.running.get(key) || []).filter((s) => s !== state);
      if (left.length) this.running.set(key, left);
      else this.running.delete(key);
      this.changed(message.id);
    }
  }

  /** "Attach again": pick the file once more, check it, upload it to the same message. */
  again(message, failedName) {
    this.picker.onchange = async () => {
      const [file] = this.picker.files;
      this.picker.value = "";
      if (!file) return;
      const refusal = await fileRefusal(file, this.rules);
      if (refusal) {
        this.refused(refusal);
        return;
      }
      this.failures.remove(message.id, failedName);
      const [state] = this.expect(message.id, [file]);
      this.changed(message.id);
      await this._upload(message, file, message.id, state);
    };
    this.picker.click();
  }

  /** "Remove": the failed file is let go. */
  dismiss(messageId, name) {
    this.failures.remove(messageId, name);
    this.changed(messageId);
  }

  /** The message is gone: so is what failed to reach it. */
  forget(messageId) {
    this.failures.forget(messageId);
  }
}
