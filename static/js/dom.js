/**
 * dom.js: build elements without HTML strings.
 *
 * `h("a", {class: "x", href}, "text", child)` creates the element, sets properties and
 * attributes, and appends children: strings become text nodes, never markup. This is how
 * every page script builds DOM, so user data can't become HTML (TRAPS: stored XSS).
 */

/**
 * @param {string} tag
 * @param {object} [props] `class`, `dataset`, `on<event>` listeners, `text`, attributes
 * @param {...(Node|string|number|null|false|Array)} children
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "hidden" || key === "disabled" || key === "checked" || key === "selected") {
      el[key] = Boolean(value);
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's children. */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** The element for a selector, or an error naming what the template lacks. */
export function $(selector, root = document) {
  const el = root.querySelector(selector);
  if (!el) throw new Error(`missing element ${selector}`);
  return el;
}
