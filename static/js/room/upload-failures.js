/**
 * upload-failures.js: the files that didn't reach a message, kept for their sender.
 *
 * A file uploads after its message is stored, so a failed upload leaves a message that went
 * out without it. Its sender must keep seeing that (with Remove, and Attach again) after a
 * reload too, so failures live in localStorage under the sender's id, by message id. Nobody
 * else needs to know: the others see the message as it is.
 */

const MAX_MESSAGES = 50;

export class UploadFailures {
  /** @param {Storage|null} storage @param {string} key */
  constructor(storage, key) {
    this.storage = storage;
    this.key = key;
    this.byMessage = this._read();
  }

  _read() {
    try {
      const data = JSON.parse(this.storage?.getItem(this.key) || "{}");
      return data && typeof data === "object" && !Array.isArray(data) ? data : {};
    } catch {
      return {};
    }
  }

  _write() {
    // The oldest failures go first once there are many: a log of them is not the point.
    const ids = Object.keys(this.byMessage);
    for (const id of ids.slice(0, Math.max(0, ids.length - MAX_MESSAGES))) {
      delete this.byMessage[id];
    }
    try {
      this.storage?.setItem(this.key, JSON.stringify(this.byMessage));
    } catch {
      // Storage full or refused: the failure still shows until the page is left.
    }
  }

  /** [{name, size, error}] for a message. */
  list(messageId) {
    return this.byMessage[messageId] || [];
  }

  add(messageId, { name, size, error }) {
    const kept = this.list(messageId).filter((f) => f.name !== name);
    this.byMessage[messageId] = [...kept, { name, size, error }];
    this._write();
  }

  remove(messageId, name) {
    const kept = this.list(messageId).filter((f) => f.name !== name);
    if (kept.length) this.byMessage[messageId] = kept;
    else delete this.byMessage[messageId];
    this._write();
  }

  forget(messageId) {
    if (!(messageId in this.byMessage)) return;
    delete this.byMessage[messageId];
    this._write();
  }
}
