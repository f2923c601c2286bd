/**
 * file-check.js: whether a file can be attached, decided when it is picked, and an upload's
 * failure in words.
 *
 * The server is the judge (chat/services/attachments.py: at most ATTACHMENT_MAX_BYTES, the
 * type read from the bytes, never from the name). The page gets its limit and its list of
 * types (`boot.attachments`) and applies what a browser can tell before anything is sent:
 * the size, and the file's first bytes against the signatures of those types. A file the
 * browser can't place is refused here too: the server would refuse it after the message
 * had gone out without it.
 */

import { fileSize } from "../format.js";

const HEAD_BYTES = 64 * 1024;
const MARKUP_START = /^\s*<[A-Za-z!?/]/;

const ascii = (bytes, start, text) =>
  [...text].every((ch, i) => bytes[start + i] === ch.charCodeAt(0));

// Type -> does this head start like one? The types are the server's ALLOWED_TYPES.
const SIGNATURES = {
  "image/png": (b) => ascii(b, 0, "\x89PNG\r\n\x1a\n"),
  "image/jpeg": (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff,
  "image/gif": (b) => ascii(b, 0, "GIF87a") || ascii(b, 0, "GIF89a"),
  "image/webp": (b) => ascii(b, 0, "RIFF") && ascii(b, 8, "WEBP"),
  "application/pdf": (b) => ascii(b, 0, "%PDF-"),
  "application/zip": (b) => ascii(b, 0, "PK\x03\x04") || ascii(b, 0, "PK\x05\x06"),
  "audio/mpeg": (b) => ascii(b, 0, "ID3") || (b[0] === 0xff && (b[1] & 0xe0) === 0xe0),
  "audio/ogg": (b) => ascii(b, 0, "OggS"),
  "audio/wav": (b) => ascii(b, 0, "RIFF") && ascii(b, 8, "WAVE"),
  "video/mp4": (b) => ascii(b, 4, "ftyp"),
  "video/webm": (b) => b[0] === 0x1a && b[1] === 0x45 && b[2] === 0xdf && b[3] === 0xa3,
};

/** "10 MB", "512 KB": a limit as people say it. */
export function limitText(bytes) {
  return fileSize(bytes).replace(/\.0 /, " ");
}

/** Plain UTF-8 text that no browser would take for markup (the server's text rule). */
function isPlainText(head) {
  if (head.includes(0)) return false;
  try {
    // `stream`: the head may end inside a character; that is not an error.
    const text = new TextDecoder("utf-8", { fatal: true }).decode(head, { stream: true });
    return !MARKUP_START.test(text.replace(/^\uFEFF/, ""));
  } catch {
    return false;
  }
}

/**
 * Why `file` can't be attached, in words, or null if the browser sees nothing against it.
 * @param {File} file
 * @param {{maxBytes: number, types: string[], typesText: string}} rules
 */
export async function fileRefusal(file, rules) {
  if (file.size === 0) return `“${file.name}” is empty.`;
  if (file.size > rules.maxBytes) return `“${file.name}” is over the ${limitText(rules.maxBytes)} limit.`;
  const head = new Uint8Array(await file.slice(0, HEAD_BYTES).arrayBuffer());
  const allowed = new Set(rules.types);
  if (Object.entries(SIGNATURES).some(([type, test]) => allowed.has(type) && test(head))) {
    return null;
  }
  if (allowed.has("text/plain") && isPlainText(head)) return null;
  return (
    `“${file.name}” can't be attached: its contents are not ${rules.typesText} ` +
    "(the type is read from the file itself, not from its name)."
  );
}

/** An upload's failure (an ApiError from uploadAttachment) in words. */
export function uploadErrorText(error, rules) {
  if (error.code === "PAYLOAD_TOO_LARGE" || error.status === 413) {
    return `over the ${limitText(error.details?.maxBytes || rules.maxBytes)} limit`;
  }
  if (error.code === "UNSUPPORTED_MEDIA_TYPE") {
    return `this type of file can't be attached (allowed: ${rules.typesText})`;
  }
  if (error.status === 0) return "the connection failed";
  return error.message.replace(/\.$/, "");
}
