/** format.js: how times, sizes and people are shown. */

const AVATAR_HUES = 10;

/** The avatar colour class of a user: the same `user_id % 10` the templates use. */
export function hueClass(userId) {
  const n = Number.isInteger(userId) ? Math.abs(userId) % AVATAR_HUES : 0;
  return `hue-${n}`;
}

export function initial(name) {
  return (String(name || "?").trim()[0] || "?").toUpperCase();
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });
const dayFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "long",
  month: "long",
  day: "numeric",
});

export function clockTime(iso) {
  return iso ? timeFormat.format(new Date(iso)) : "";
}

export function fullTime(iso) {
  return iso ? fullFormat.format(new Date(iso)) : "";
}

/** A day label for a date separator: Today, Yesterday, or the date. */
export function dayLabel(iso) {
  const date = new Date(iso);
  const today = new Date();
  const start = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((start(today) - start(date)) / 86_400_000);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  return dayFormat.format(date);
}

/** When, in a list of messages from any day (search hits, pins, versions): "Today 14:05". */
export function dayAndTime(iso) {
  return `${dayLabel(iso)} ${clockTime(iso)}`;
}

export function sameDay(a, b) {
  return new Date(a).toDateString() === new Date(b).toDateString();
}

export function fileSize(bytes) {
  if (!Number.isFinite(bytes)) return "";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** "alice", "alice and bob", "alice, bob and 2 others". */
export function names(list, max = 3) {
  if (list.length <= 1) return list.join("");
  if (list.length <= max) return `${list.slice(0, -1).join(", ")} and ${list[list.length - 1]}`;
  const rest = list.length - (max - 1);
  return `${list.slice(0, max - 1).join(", ")} and ${rest} others`;
}
