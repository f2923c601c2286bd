/**
 * markdown.js: a small, strict Markdown renderer for chat messages and assistant answers.
 *
 * Message text is untrusted (TRAPS: stored XSS). This renderer never parses HTML: it reads
 * the text as Markdown and builds DOM nodes with createElement and textContent, so anything
 * that looks like markup stays text. It produces only these elements: p, br, strong, em,
 * code, pre, a (http and https links only, rel="noopener noreferrer nofollow"), ul, ol, li.
 * Headings come out as a bold paragraph, so an assistant's "### Steps" still reads well.
 */

const ESCAPABLE = "\\`*_{}[]()#+-.!>~|";
const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/;
const LIST_ITEM = /^ {0,3}(?:([-*+])|(\d{1,9})[.)])\s+(.*)$/;
const HEADING = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/;
const LINK = /\[([^\]\n]+)\]\(\s*([^\s()<>]+)\s*\)/y;
const AUTOLINK = /https?:\/\/[^\s<>"'`]+/iy;
const CODE_SPAN = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/y;
const TRAILING_PUNCT = /[.,;:!?'")\]]+$/;

/** A safe link target, or null: absolute http(s) URLs only. */
export function safeHref(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function link(href, children) {
  const a = document.createElement("a");
  a.href = href;
  a.rel = "noopener noreferrer nofollow";
  a.target = "_blank";
  a.append(...children);
  return a;
}

function isWordChar(ch) {
  return ch !== undefined && /[\p{L}\p{N}]/u.test(ch);
}

/** Where the emphasis opened at `start` with `marker` closes, or -1. */
function closingMarker(text, start, marker) {
  const width = marker.length;
  let i = start + width;
  if (i >= text.length || /\s/.test(text[i])) return -1;
  while ((i = text.indexOf(marker, i)) !== -1) {
    const before = text[i - 1];
    const after = text[i + width];
    const ok =
      i > start + width &&
      !/\s/.test(before) &&
      before !== "\\" &&
      // `*a**` is not an italic closing followed by a star: skip marker runs that are longer.
      (width === 2 || after !== marker[0]) &&
      // Not inside a word: "snake_case" and "2*3*4" stay as written.
      !isWordChar(after);
    if (ok) return i;
    i += 1;
  }
  return -1;
}

/** Inline Markdown of `text` as an array of nodes. */
function inline(text, { links = true } = {}) {
  const out = [];
  let buffer = "";
  const flush = () => {
    if (buffer) out.push(document.createTextNode(buffer));
    buffer = "";
  };
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === "\\" && ESCAPABLE.includes(text[i + 1] ?? "")) {
      buffer += text[i + 1];
      i += 2;
      continue;
    }
    if (ch === "`") {
      CODE_SPAN.lastIndex = i;
      const m = CODE_SPAN.exec(text);
      if (m) {
        flush();
        const code = document.createElement("code");
        code.textContent =
          m[2].length > 2 && m[2].startsWith(" ") && m[2].endsWith(" ") ? m[2].slice(1, -1) : m[2];
        out.push(code);
        i = CODE_SPAN.lastIndex;
        continue;
      }
      // An unclosed run of backticks is text, all of it (not the start of another span).
      const run = /`+/y;
      run.lastIndex = i;
      buffer += run.exec(text)[0];
      i = run.lastIndex;
      continue;
    }
    if (ch === "*" || ch === "_") {
      const double = text[i + 1] === ch;
      const opensWord = !isWordChar(text[i - 1]);
      if (double && opensWord) {
        const end = closingMarker(text, i, ch + ch);
        if (end !== -1) {
          flush();
          const strong = document.createElement("strong");
          strong.append(...inline(text.slice(i + 2, end), { links }));
          out.push(strong);
          i = end + 2;
          continue;
        }
      } else if (!double && opensWord) {
        const end = closingMarker(text, i, ch);
        if (end !== -1) {
          flush();
          const em = document.createElement("em");
          em.append(...inline(text.slice(i + 1, end), { links }));
          out.push(em);
          i = end + 1;
          continue;
        }
      }
      // Not emphasis: keep the whole marker run as text.
      const run = ch === "*" ? /\*+/y : /_+/y;
      run.lastIndex = i;
      buffer += run.exec(text)[0];
      i = run.lastIndex;
      continue;
    }
    if (ch === "[" && links) {
      LINK.lastIndex = i;
      const m = LINK.exec(text);
      const href = m && safeHref(m[2]);
      if (href) {
        flush();
        out.push(link(href, inline(m[1], { links: false })));
        i = LINK.lastIndex;
        continue;
      }
    }
    if ((ch === "h" || ch === "H") && links && !isWordChar(text[i - 1])) {
      AUTOLINK.lastIndex = i;
      const m = AUTOLINK.exec(text);
      if (m) {
        const raw = m[0].replace(TRAILING_PUNCT, "");
        const href = safeHref(raw);
        if (href && raw.length > "https://".length) {
          flush();
          out.push(link(href, [document.createTextNode(raw)]));
          i += raw.length;
          continue;
        }
      }
    }
    buffer += ch;
    i += 1;
  }
  flush();
  return out;
}

/** A paragraph of lines joined by <br>. */
function paragraph(lines, tag = "p") {
  const p = document.createElement(tag);
  lines.forEach((line, n) => {
    if (n > 0) p.append(document.createElement("br"));
    p.append(...inline(line));
  });
  return p;
}

/**
 * Render Markdown `text` into a DocumentFragment of safe nodes.
 * @param {string} text
 * @returns {DocumentFragment}
 */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const lines = String(text ?? "")
    .replace(/\r\n?/g, "\n")
    .split("\n");
  let i = 0;
  let para = [];
  const endParagraph = () => {
    if (para.length) fragment.append(paragraph(para));
    para = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      endParagraph();
      const closing = new RegExp(`^ {0,3}${fence[1][0]}{${fence[1].length},}\\s*$`);
      const body = [];
      i += 1;
      while (i < lines.length && !closing.test(lines[i])) body.push(lines[i++]);
      i += 1; // the closing fence (or the end: an unclosed block runs to the end, as it streams)
      const pre = document.createElement("pre");
      const code = document.createElement("code");
      if (fence[2]) code.dataset.lang = fence[2];
      code.textContent = body.join("\n");
      pre.append(code);
      fragment.append(pre);
      continue;
    }
    const item = LIST_ITEM.exec(line);
    if (item) {
      endParagraph();
      const ordered = item[2] !== undefined;
      const list = document.createElement(ordered ? "ol" : "ul");
      if (ordered && item[2] !== "1") list.start = Number(item[2]);
      let current = null;
      while (i < lines.length) {
        const m = LIST_ITEM.exec(lines[i]);
        if (m && (m[2] !== undefined) === ordered) {
          current = document.createElement("li");
          current.append(...inline(m[3]));
          list.append(current);
        } else if (!m && /^\s{2,}\S/.test(lines[i]) && current) {
          // An indented line continues the item above it.
          current.append(document.createElement("br"), ...inline(lines[i].trim()));
        } else {
          break;
        }
        i += 1;
      }
      fragment.append(list);
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      endParagraph();
      const p = document.createElement("p");
      const strong = document.createElement("strong");
      strong.append(...inline(heading[1]));
      p.append(strong);
      fragment.append(p);
      i += 1;
      continue;
    }
    if (line.trim() === "") endParagraph();
    else para.push(line);
    i += 1;
  }
  endParagraph();
  return fragment;
}

/** Plain text of Markdown, for previews and titles (markers dropped, nothing rendered). */
export function plainText(text) {
  const holder = document.createElement("div");
  holder.append(renderMarkdown(text));
  return holder.textContent;
}
