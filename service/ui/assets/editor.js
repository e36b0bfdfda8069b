// The spec editor: a textarea with line numbers, errors marked at their line (the API's
// `line`, or the dependencies a solver's message names), and the edits the package picker
// makes to an environment.yml's dependency list. No YAML parser in the browser: the
// service parses, this only finds lines.

import { h } from "./dom.js";

export class SpecEditor {
  constructor({ id, label, value = "" }) {
    this.gutter = h("pre", { class: "gutter", "aria-hidden": "true" });
    this.area = h("textarea", { id, class: "code", spellcheck: "false", autocomplete: "off",
      autocapitalize: "off", "aria-describedby": `${id}-keys ${id}-errors`, rows: 18,
      wrap: "off" });
    this.area.value = value;
    this.errors = h("div", { id: `${id}-errors` });
    this.marked = new Set();
    this.element = h("div", {}, h("label", { for: id }, label),
      h("p", { class: "hint", id: `${id}-keys` }, "Tab indents by two spaces; press Escape, ",
        "then Tab, to move on."),
      h("div", { class: "editor" }, this.gutter, this.area), this.errors);
    this.area.addEventListener("input", () => this.renumber());
    this.area.addEventListener("scroll", () => { this.gutter.scrollTop = this.area.scrollTop; });
    this.area.addEventListener("keydown", (event) => {  // Tab indents; Esc then Tab leaves
      if (event.key === "Tab" && !event.shiftKey && !this.escaped) {
        event.preventDefault();
        const { selectionStart: start, selectionEnd: end } = this.area;
        this.area.setRangeText("  ", start, start === end ? end : start, "end");
        this.renumber();
      }
      this.escaped = event.key === "Escape";
    });
    this.renumber();
  }

  get value() { return this.area.value; }

  set value(text) { this.area.value = text; this.renumber(); }

  renumber() {
    const count = this.area.value.split("\n").length;
    this.gutter.replaceChildren();
    for (let i = 1; i <= count; i += 1) {
      this.gutter.append(this.marked.has(i) ? h("span", { class: "bad" }, String(i))
        : String(i), "\n");
    }
    this.gutter.scrollTop = this.area.scrollTop;
  }

  /** No error: the marks and the message go. */
  clear() {
    this.marked.clear();
    this.area.removeAttribute("aria-invalid");
    this.element.querySelector(".editor").classList.remove("invalid");
    this.errors.replaceChildren();
    this.renumber();
  }

  /** Show `message` and mark `lines` (the first one gets a "go to" button). */
  fail(message, lines = []) {
    this.marked = new Set(lines);
    this.area.setAttribute("aria-invalid", "true");
    this.element.querySelector(".editor").classList.add("invalid");
    const goto = lines.length ? h("button", { type: "button", class: "small",
      onclick: () => this.select(lines[0]) }, `Go to line ${lines[0]}`) : null;
    const where = lines.length ? `Line${lines.length > 1 ? "s" : ""} ${lines.join(", ")}: ` : "";
    this.errors.replaceChildren(h("div", { class: "alert", role: "alert" },
      where, message, " ", goto));
    this.renumber();
  }

  /** Put the caret on a line (1-based) and select it. */
  select(line) {
    const lines = this.area.value.split("\n");
    const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    this.area.focus();
    this.area.setSelectionRange(start, start + (lines[line - 1] || "").length);
  }

  /** The dependency lines (not channels, not other keys) whose package a message names. */
  linesNamed(message) {
    const block = dependencyBlock(this.area.value.split("\n"));
    if (!block || block.flow) return [];
    return [...block.items, ...block.pip].filter(({ name }) => {
      const escaped = name.replace(/[.]/g, "\\.");
      return new RegExp(`(^|[^A-Za-z0-9_.-])${escaped}([^A-Za-z0-9_-]|$)`, "i").test(message);
    }).map(({ line }) => line + 1);
  }

  /** Add `name` to the conda dependencies (after the last, before a `- pip:` entry):
   * "added", "present" (already a conda dependency), or "unsupported" (a flow list over
   * several lines: better the user edits it than a guess breaks it). */
  addDependency(name) {
    const lines = this.area.value.replace(/\n+$/, "").split("\n");
    const block = dependencyBlock(lines);
    if (block && block.flow) {
      const line = lines[block.key];
      if (!/\]\s*(#.*)?$/.test(line)) return "unsupported";
      const listed = line.slice(line.indexOf("[") + 1, line.lastIndexOf("]")).split(",")
        .map((item) => nameOf(item.trim())).filter(Boolean);
      if (listed.some((n) => n.toLowerCase() === name.toLowerCase())) return "present";
      lines[block.key] = line.replace(/\](\s*(#.*)?)$/,
        (_, tail) => `${listed.length ? ", " : ""}${name}]${tail}`);
    } else if (!block) {
      lines.push("dependencies:", `  - ${name}`);
    } else {
      if (block.items.some((i) => i.name.toLowerCase() === name.toLowerCase())) return "present";
      lines.splice(block.insertAt, 0, `${block.indent}- ${name}`);
    }
    this.value = `${lines.join("\n")}\n`;
    return "added";
  }
}

/** A match spec's package name: `conda-forge::numpy>=1.2` -> numpy (quotes dropped). */
function nameOf(text) {
  const m = /^["']?(?:[\w.-]+::)?([A-Za-z0-9_][A-Za-z0-9_.-]*)/.exec(text);
  return m ? m[1] : null;
}

/**
 * The top-level `dependencies:` of an environment.yml, read line by line: its conda items
 * ({line, name}, 0-based), the items under its `- pip:` entry, the items' indent and where
 * a new conda item goes; {flow: true} for `dependencies: [...]`; null when there is none.
 */
function dependencyBlock(lines) {
  const key = lines.findIndex((l) => /^dependencies\s*:/.test(l));
  if (key < 0) return null;
  const rest = lines[key].replace(/^dependencies\s*:\s*/, "");
  if (rest && !rest.startsWith("#")) return { key, flow: true };
  const items = [], pip = [];
  let indent = null, insertAt = key + 1, inPip = false;
  for (let i = key + 1; i < lines.length; i += 1) {
    const line = lines[i];
    if (/^\s*(#.*)?$/.test(line)) continue;  // blank or a comment
    const m = /^(\s*)-\s*(.*)$/.exec(line);
    if (!m) {
      if (/^\S/.test(line)) break;  // the next top-level key
      continue;
    }
    if (indent === null) indent = m[1];
    if (m[1].length < indent.length) break;
    if (m[1].length > indent.length) {  // deeper: under `- pip:`
      if (inPip && nameOf(m[2])) pip.push({ line: i, name: nameOf(m[2]) });
      continue;
    }
    inPip = /^pip\s*:/.test(m[2]);
    if (!inPip && nameOf(m[2])) {
      items.push({ line: i, name: nameOf(m[2]) });
      insertAt = i + 1;
    }
  }
  return { key, flow: false, items, pip, indent: indent ?? "  ", insertAt };
}
