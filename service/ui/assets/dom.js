// Building the page safely: every text goes in as a text node (never as HTML), so a name,
// a message or a log line a user wrote cannot become markup. Plus the formatters pages share.

/** h("a", {href: "#/"}, "text", child…): an element; null/false children are skipped. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function link(href, ...children) {
  return h("a", { href }, ...children);
}

/** A route's hash for an environment (names are [A-Za-z0-9._-]: safe in a URL). */
export const envHref = (ns, name, rest = "") => `#/env/${ns}/${name}${rest}`;

const UNITS = ["B", "KB", "MB", "GB", "TB"];
export function bytes(n) {
  if (n === null || n === undefined) return "—";
  let value = Number(n), unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) { value /= 1000; unit += 1; }
  return `${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${UNITS[unit]}`;
}

/** "3 min ago" beside a <time> carrying the exact instant (shown as its tooltip). */
export function when(iso) {
  if (!iso) return "—";
  const t = new Date(iso);
  const secs = Math.round((Date.now() - t.getTime()) / 1000);
  let text;
  if (secs < 45) text = "just now";
  else if (secs < 3600) text = `${Math.round(secs / 60)} min ago`;
  else if (secs < 86400) text = `${Math.round(secs / 3600)} h ago`;
  else if (secs < 86400 * 30) text = `${Math.round(secs / 86400)} d ago`;
  else text = t.toISOString().slice(0, 10);
  return h("time", { datetime: iso, title: t.toLocaleString() }, text);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
  return m < 60 ? `${m} min ${s} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Seconds between two ISO times, or null. */
export function between(start, end) {
  if (!start || !end) return null;
  return (new Date(end).getTime() - new Date(start).getTime()) / 1000;
}

export function stateBadge(state) {
  return state ? h("span", { class: `badge s-${state}` }, state) : "—";
}

const VERDICT_TEXT = { ok: "Dask ok", mismatch: "Dask mismatch", none: "no Dask",
  unchecked: "unchecked" };
export function verdictBadge(verdict) {
  if (!verdict) return "—";
  return h("span", { class: `badge v-${verdict}` }, VERDICT_TEXT[verdict] || verdict);
}

/** A table: headers [{label, num?, narrow?}], rows of cells; an empty text when no row. */
export function table(caption, headers, rows, { empty = "None.", rowClass } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "table-wrap" }, h("table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((col) => h("th", {
      scope: "col", class: [col.num ? "num" : "", col.narrow ? "hide-narrow" : ""]
        .join(" ").trim() || null }, col.label)))),
    h("tbody", {}, rows.map((cells, i) => h("tr", { class: rowClass ? rowClass(i) : null },
      cells.map((cell, j) => h("td", { class: [headers[j].num ? "num" : "",
        headers[j].narrow ? "hide-narrow" : ""].join(" ").trim() || null }, cell)))))));
}

/** Say something to screen readers (the status region) without moving focus. */
export function announce(text) {
  const region = document.getElementById("status");
  if (!region) return;
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 30);
}

/** An alert box for an error; `line` (a spec's line) is shown with it. */
export function alertBox(message) {
  return h("div", { class: "alert", role: "alert" }, message);
}

/** A modal dialog; resolves true when confirmed. Focus returns where it was. */
export function confirmDialog({ title, body, confirm, danger = false }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    const ok = h("button", { type: "button", class: danger ? "danger primary" : "primary" },
      confirm);
    const cancel = h("button", { type: "button" }, "Cancel");
    const dialog = h("dialog", { "aria-labelledby": titleId },
      h("h2", { id: titleId }, title), body, h("div", { class: "actions" }, ok, cancel));
    const close = (answer) => {
      dialog.close();
      dialog.remove();
      if (opener && opener.focus) opener.focus();
      resolve(answer);
    };
    ok.addEventListener("click", () => close(true));
    cancel.addEventListener("click", () => close(false));
    dialog.addEventListener("cancel", (event) => { event.preventDefault(); close(false); });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
