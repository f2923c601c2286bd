/**
 * markdown.js: a small, strict Markdown renderer for chat messages and assistant answers.
 *
 * Message text is untrusted (TRAPS: stored XSS). This renderer never parses HTML: it reads
 * the text as Markdown and builds DOM nodes with createElement and textContent, so anything
 * that looks like markup stays text. It produces only these elements: p, br, strong, em,
 * code, pre, a (http and https links only, rel="noopener noreferrer nofollow"), ul, ol, li,
 * h3 to h6, and GitHub's tables (table, thead, tbody, tr, th, td). A message's headings
 * start at h3: the page's own h1 and h2 (the room, its sidebar and panel) stay above them.
 * Code blocks carry their language as `data-lang`; highlighting them is code-blocks.js's
 * job, on the nodes built here.
 */

const ESCAPABLE = "\\`*_{}[]()#+-.!>~|";
const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/;
const LIST_ITEM = /^ {0,3}(?:([-*+])|(\d{1,9})[.)])\s+(.*)$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const TABLE_DELIMITER = /^ {0,3}\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$/;
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

/** A table row's cells: split on every `|` not escaped, the outer ones optional. */
function tableCells(line) {
  let text = line.trim();
  if (text.startsWith("|")) text = text.slice(1);
  if (text.endsWith("|") && !text.endsWith("\\|")) text = text.slice(0, -1);
  const cells = [];
  let cell = "";
  for (let i = 0; i < text.length; i += 1) {
    if (text[i] === "\\" && text[i + 1] === "|") {
      cell += "\\|"; // left escaped: inline() turns it into a plain "|"
      i += 1;
    } else if (text[i] === "|") {
      cells.push(cell.trim());
      cell = "";
    } else {
      cell += text[i];
    }
  }
  cells.push(cell.trim());
  return cells;
}

/** How each column of a delimiter row aligns: "left", "center", "right" or null. */
function alignments(line) {
  return tableCells(line).map((cell) => {
    const left = cell.startsWith(":");
    const right = cell.endsWith(":");
    if (left && right) return "center";
    if (right) return "right";
    return left ? "left" : null;
  });
}

/** Whether `lines[i]` starts a table: a header row, then a delimiter row as wide. */
function isTableStart(lines, i) {
  const next = lines[i + 1];
  return (
    lines[i].includes("|") &&
    next !== undefined &&
    TABLE_DELIMITER.test(next) &&
    next.includes("|") &&
    tableCells(lines[i]).length === tableCells(next).length
  );
}

function tableRow(cells, tag, aligns) {
  const tr = document.createElement("tr");
  aligns.forEach((align, n) => {
    const cell = document.createElement(tag);
    if (align) cell.className = `align-${align}`;
    cell.append(...inline(cells[n] ?? ""));
    tr.append(cell);
  });
  return tr;
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
    if (isTableStart(lines, i)) {
      endParagraph();
      const aligns = alignments(lines[i + 1]);
      const table = document.createElement("table");
      const head = document.createElement("thead");
      head.append(tableRow(tableCells(line), "th", aligns));
      const body = document.createElement("tbody");
      i += 2;
      while (i < lines.length && lines[i].trim() !== "" && lines[i].includes("|")) {
        body.append(tableRow(tableCells(lines[i]), "td", aligns));
        i += 1;
      }
      table.append(head);
      if (body.childElementCount) table.append(body);
      fragment.append(table);
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
      const level = Math.min(6, heading[1].length + 2);
      const title = document.createElement(`h${level}`);
      title.append(...inline(heading[2]));
      fragment.append(title);
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

const BLOCKS = new Set(["P", "PRE", "LI", "TR", "H3", "H4", "H5", "H6", "UL", "OL", "TABLE"]);

/** Plain text of Markdown, for previews and titles (markers dropped, nothing rendered):
 * each paragraph, list item, code block, heading and table row on a line of its own, so a
 * list does not run together ("Checklist:tests greenchangelog"). */
export function plainText(text) {
  const parts = [];
  const walk = (node) => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) parts.push(child.data);
      else if (child.tagName === "BR") parts.push("\n");
      else {
        walk(child);
        if (BLOCKS.has(child.tagName)) parts.push("\n");
        else if (child.tagName === "TD" || child.tagName === "TH") parts.push(" ");
      }
    }
  };
  walk(renderMarkdown(text));
  return parts
    .join("")
    .replace(/[ \t]*\n\s*/g, "\n")
    .trim();
}
