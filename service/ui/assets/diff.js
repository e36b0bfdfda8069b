// A lock diff as people read it: what is added, removed, and each change marked major,
// minor, patch or build (the API's verdicts), conda and pip alike. Shared by the
// environment's history and the editor's preview.

import { h, table } from "./dom.js";

const KIND_TEXT = { added: "added", removed: "removed", major: "major", minor: "minor",
  patch: "patch", build: "build", other: "changed" };

function version(v, build) {
  if (!v) return "—";
  return build ? h("span", {}, v, h("span", { class: "muted" }, ` ${build}`)) : v;
}

function arrow(direction) {
  if (direction === "down") return " ↓ downgrade";
  return "";
}

/** One sentence: "2 added, 1 removed, 3 changed (1 major, 2 patch)". */
export function summaryText(diff) {
  const changed = diff.changed.length;
  const kinds = ["major", "minor", "patch", "build", "other"]
    .filter((k) => diff.summary[k]).map((k) => `${diff.summary[k]} ${KIND_TEXT[k]}`);
  const parts = [`${diff.added.length} added`, `${diff.removed.length} removed`,
    `${changed} changed${kinds.length ? ` (${kinds.join(", ")})` : ""}`];
  return diff.added.length + diff.removed.length + changed === 0
    ? "No package changes." : `${parts.join(", ")}.`;
}

/** The diff as a table, newest-change-first order as the API gives. */
export function diffView(diff, caption) {
  const rows = [...diff.added, ...diff.removed, ...diff.changed].map((c) => [
    h("span", {}, c.name, c.manager === "pip" ? h("span", { class: "muted" }, " (pip)") : null),
    h("span", { class: `badge c-${c.kind}` }, KIND_TEXT[c.kind] || c.kind, arrow(c.direction)),
    version(c.before, c.kind === "build" ? c.before_build : null),
    version(c.after, c.kind === "build" ? c.after_build : null),
  ]);
  return h("div", { class: "diff" },
    h("p", { "data-summary": "" }, summaryText(diff)),
    table(caption, [{ label: "Package" }, { label: "Change" }, { label: "Before" },
      { label: "After" }], rows, { empty: "" }));
}
