// The spec editor: a textarea with line numbers, errors marked at their line (the API's
// `line`, or the dependencies a solver's message names), and the edits the package picker
// makes to an environment.yml's dependency list. No YAML parser in the browser: the
// service parses, this only finds lines.

import { h } from "./dom.js";

const ITEM = /^(\s*)-\s+(?!pip:)([A-Za-z0-9_][A-Za-z0-9_.-]*)/;

export class SpecEditor {
  constructor({ id, label, value = "" }) {
    this.gutter = h("pre", { class: "gutter", "aria-hidden": "true" });
    this.area = h("textarea", { id, class: "code", spellcheck: "false", autocomplete: "off",
      autocapitalize: "off", "aria-describedby": `${id}-errors`, rows: 18, wrap: "off" });
    this.area.value = value;
    this.errors = h("div", { id: `${id}-errors` });
    this.marked = new Set();
    this.element = h("div", {}, h("label", { for: id }, label),
      h("div", { class: "editor" }, this.gutter, this.area), this.errors);
    this.area.addEventListener("input", () => this.renumber());
    this.area.addEventListener("scroll", () => { this.gutter.scrollTop = this.area.scrollTop; });
    this.area.addEventListener("keydown", (event) => {  // Tab indents; Esc then Tab leaves
      if (event.key === "Tab" && !event.shiftKey && !this.escaped) {
        event.preventDefault();
        this.area.setRangeText("  ", this.area.selectionStart, this.area.selectionEnd, "end");
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

  /** The dependency lines whose package a solver's message names. */
  linesNamed(message) {
    const out = [];
    this.area.value.split("\n").forEach((text, i) => {
      const m = ITEM.exec(text);
      if (!m) return;
      const escaped = m[2].replace(/[.]/g, "\\.");
      if (new RegExp(`(^|[^A-Za-z0-9_.-])${escaped}([^A-Za-z0-9_-]|$)`, "i").test(message)) {
        out.push(i + 1);
      }
    });
    return out;
  }

  /** Add `name` to the conda dependencies (before a `- pip:` entry); false if present. */
  addDependency(name) {
    const lines = this.area.value.replace(/\n+$/, "").split("\n");
    if (lines.some((l) => { const m = ITEM.exec(l); return m && m[2].toLowerCase() === name; })) {
      return false;
    }
    const key = lines.findIndex((l) => /^dependencies:\s*(#.*)?$/.test(l));
    const flow = lines.findIndex((l) => /^dependencies:\s*\[.*\]\s*(#.*)?$/.test(l));
    if (flow >= 0) {
      lines[flow] = lines[flow].replace(/\]\s*(#.*)?$/, (tail) => {
        const empty = /\[\s*\]/.test(lines[flow]);
        return `${empty ? "" : ", "}${name}${tail}`;
      });
    } else if (key < 0) {
      lines.push("dependencies:", `  - ${name}`);
    } else {
      let end = key + 1, indent = "  ";
      for (let i = key + 1; i < lines.length; i += 1) {
        if (/^\S/.test(lines[i])) break;  // the next top-level key
        const m = /^(\s*)-\s+(.*)$/.exec(lines[i]);
        if (m && m[2].startsWith("pip:")) break;
        if (m) { indent = m[1]; end = i + 1; }
      }
      lines.splice(end, 0, `${indent}- ${name}`);
    }
    this.value = `${lines.join("\n")}\n`;
    return true;
  }
}
