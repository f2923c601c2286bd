/**
 * export-menu.js: the room header's "Export" menu (a <details>): Markdown or JSON.
 *
 * Each choice is a plain link to the export endpoint with the `download` attribute: the
 * browser streams the file to disk itself (named by the server's Content-Disposition) with
 * the session cookie, so nothing is held in the page. This only closes the menu: after a
 * choice, on a click outside it, and on Escape (giving the focus back to its button).
 */

const menu = document.getElementById("export-menu");

if (menu) {
  const close = (refocus) => {
    if (!menu.open) return;
    menu.open = false;
    if (refocus) menu.querySelector("summary").focus();
  };
  menu.addEventListener("click", (event) => {
    if (event.target.closest("a[download]")) close(false);
  });
  document.addEventListener("click", (event) => {
    if (!menu.contains(event.target)) close(false);
  });
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close(true);
  });
}
