/**
 * code-blocks.js: the code blocks of rendered Markdown, highlighted by language and given a
 * Copy button, as chat apps for code do.
 *
 * It works on the `pre > code` nodes markdown.js builds, whose `data-lang` is the fence's
 * language. The highlighter is Prism (static/vendor/prism/, MIT), loaded by the page as a
 * classic script with `data-manual` so it never rewrites the page by itself. Only its
 * tokenizer is used: `Prism.tokenize` returns tokens, which become spans here through
 * createElement and textContent, so markdown.js's guarantee holds (no HTML is parsed, the
 * code stays text). Without Prism, or for a language it doesn't know, a block stays plain.
 */

import { h } from "./dom.js";

// Names people write after ``` that Prism knows by another name.
const ALIASES = {
  console: "bash",
  shell: "bash",
  zsh: "bash",
  golang: "go",
  rs: "rust",
  "c++": "cpp",
  jsonc: "json",
  py3: "python",
  jinja: "django",
  jinja2: "django",
};

function grammarFor(lang) {
  const prism = globalThis.Prism;
  if (!prism?.languages || !lang) return null;
  const name = lang.toLowerCase();
  const grammar = prism.languages[ALIASES[name] || name];
  return grammar && typeof grammar === "object" ? grammar : null;
}

/** Prism's tokens as nodes: a span per token (classes as Prism's themes expect), text as text. */
function tokenNodes(tokens) {
  return (Array.isArray(tokens) ? tokens : [tokens]).map((token) => {
    if (typeof token === "string") return document.createTextNode(token);
    const aliases = [token.alias || []].flat();
    const span = document.createElement("span");
    span.className = ["token", token.type, ...aliases].join(" ");
    span.append(...tokenNodes(token.content));
    return span;
  });
}

/** Colour `code` by `lang`, if the highlighter knows it; true if it did. */
function highlight(code, lang) {
  const grammar = grammarFor(lang);
  if (!grammar) return false;
  const tokens = globalThis.Prism.tokenize(code.textContent, grammar);
  code.replaceChildren(...tokenNodes(tokens));
  return true;
}

async function copyText(button, code) {
  const text = code.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    // No clipboard access (a page not served over https, or refused): select the code so
    // Ctrl+C copies it.
    const range = document.createRange();
    range.selectNodeContents(code);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
  setTimeout(() => {
    button.textContent = "Copy";
  }, 1500);
}

/** Highlight every code block under `root` and give each a header with its language and a
 * Copy button. Returns `root`. */
export function enhanceCodeBlocks(root) {
  for (const pre of root.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    if (!code || pre.parentElement?.classList.contains("code-block")) continue;
    const lang = code.dataset.lang || "";
    const highlighted = highlight(code, lang);
    const copy = h(
      "button",
      { type: "button", class: "code-copy", title: "Copy the code" },
      "Copy",
    );
    copy.addEventListener("click", () => copyText(copy, code));
    const block = h("div", { class: `code-block${highlighted ? " highlighted" : ""}` });
    pre.replaceWith(block);
    const head = h("div", { class: "code-head" }, h("span", { class: "code-lang" }, lang), copy);
    block.append(head, pre);
  }
  return root;
}
