// One build (a version): its stages as a timeline, the log streamed while it runs, cancel;
// a failed build ends failed with its error at the top, never a spinner.

import { ApiError, api, apiUrl, followLog } from "./api.js";
import { daskView } from "./dask.js";
import {
  alertBox, announce, between, bytes, duration, envHref, fill, h, stateBadge, when,
} from "./dom.js";

const TERMINAL = new Set(["ready", "failed", "cancelled", "deleting", "deleted"]);
const STAGES = [["queued", "Queued", null], ["solving", "Solving", "solve"],
  ["installing", "Installing", "install"], ["packing", "Packing", "pack"]];

/** The timeline's steps: done, active, failed, stopped, skipped or waiting. A running
 * build's come from its state; a finished one's from the stage it stopped in (the
 * service records it) and the stages it timed (a stage that did not run: skipped). */
function timeline(v) {
  const running = !TERMINAL.has(v.state);
  const timed = v.timings || {};
  const solves = v.kind === "spec" && !v.preview;
  // the stage the build stopped in, as a step: check and read have none of their own
  const stoppedAt = { read: "queued", solve: "solving", check: "checking",
    install: "installing", pack: "packing", publish: "end", image: "end" }[v.stopped_in];
  const steps = [["queued", "Queued", null], ["solving", "Solving", "solve"]];
  if (stoppedAt === "checking") steps.push(["checking", "Checking", null]);
  steps.push(["installing", "Installing", "install"], ["packing", "Packing", "pack"]);
  const at = steps.findIndex(([state]) => state === (running ? v.state : stoppedAt));
  const items = steps.map(([state, label, timing], i) => {
    const took = timing ? timed[timing] : undefined;
    let status;
    if (state === "solving" && !solves) status = "skipped";
    else if (running) status = i < at ? "done" : i === at ? "active" : "waiting";
    else if (at >= 0) status = i < at ? (took === undefined && i > 0 ? "skipped" : "done")
      : i === at ? (v.state === "failed" ? "failed" : "stopped") : "waiting";
    else if (v.state === "ready" || stoppedAt === "end") {
      status = took !== undefined || state === "queued" ? "done" : "skipped";
    } else status = "waiting";
    const why = state === "solving" && status === "skipped" ? " (a lock: no solve)" : "";
    return { label: `${label}${why}`, status, took };
  });
  const last = running ? "ready" : v.state;
  const endStatus = v.state === "ready" ? "done"
    : v.state === "failed" && (stoppedAt === "end" || at < 0) ? "failed"
      : running ? "waiting" : "stopped";
  items.push({ label: last[0].toUpperCase() + last.slice(1), status: endStatus });
  return h("ol", { class: "stages", "aria-label": "Build stages" }, items.map((i) =>
    h("li", { class: i.status, "aria-current": i.status === "active" ? "step" : null },
      i.label, i.took !== undefined ? ` · ${duration(i.took)}` : "",
      h("span", { class: "visually-hidden" }, ` (${i.status})`))));
}

export async function render(view, { ns, name, number }, ctx) {
  const base = `environments/${ns}/${name}`;
  const path = `${base}/versions/${number}`;
  ctx.title(`${ns}/${name} v${number}`);
  const developer = ctx.can(ns, "developer");
  const head = h("div");
  const logBox = h("pre", { class: "log", id: "log", role: "log", "aria-live": "off",
    tabindex: "0", "aria-label": "Build log" });
  const logNote = h("p", { class: "hint", id: "log-note" });
  const problem = h("div");
  const packs = h("section", { id: "platform-packs" });
  let stopFollowing = null;
  let detail = null;

  /** One pack per platform the lock covers, made from the lock (never installed): a
   * laptop on another platform gets the same packages as the hub. */
  async function loadPacks(v) {
    if (v.state !== "ready") return fill(packs);
    try {
      const data = await api(`${path}/platforms`);
      return fill(packs, h("h2", { id: "packs-h" }, "Packs for each platform"),
        h("p", { class: "hint" }, "Each platform's locked packages, verified, with an unpack "
          + "script: extract the .tar, then run sh unpack.sh PREFIX (micromamba, mamba or "
          + "conda if found, else py-rattler). The first download makes the pack."),
        h("ul", { id: "platform-pack-links", "aria-labelledby": "packs-h" },
          data.platforms.map((p) => h("li", {},
            h("a", { href: apiUrl(`${path}/packs/${p.platform}`).href, download: "",
              "data-platform": p.platform }, `${p.platform} pack`),
            ` — ${p.conda_packages} conda`, p.pip_packages ? ` + ${p.pip_packages} pip` : "",
            " packages, ", p.available ? bytes(p.bytes) : "made on first download",
            p.platform === data.service_platform ? " (the service's own platform)" : ""))));
    } catch (err) {
      return fill(packs, alertBox(`Packs per platform: ${err.message}`));
    }
  }

  function appendLog(line) {
    const atEnd = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 30;
    logBox.append(`${line}\n`);
    if (atEnd) logBox.scrollTop = logBox.scrollHeight;
  }

  function renderHead(v) {
    const running = !TERMINAL.has(v.state);
    const actions = [];
    if (developer && running) {
      actions.push(h("button", { type: "button", class: "danger", id: "cancel",
        onclick: cancel }, "Cancel build"));
    }
    if (developer && v.state === "ready" && !v.current) {
      actions.push(h("button", { type: "button", class: "primary", id: "activate",
        onclick: activate }, "Make current"));
    }
    actions.push(h("a", { class: "button", href: envHref(ns, name) }, `Back to ${ns}/${name}`));
    fill(head,
      h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Environments"), " › ",
        h("a", { href: envHref(ns, name) }, `${ns}/${name}`)),
      h("h1", {}, `${ns}/${name} v${v.number} `, stateBadge(v.state)),
      v.state === "failed" ? h("div", { class: "alert", role: "alert", id: "build-error" },
        h("strong", {}, "The build failed. "), v.error || "(no error recorded)") : null,
      v.state === "cancelled" ? h("div", { class: "notice", role: "status" },
        "This build was cancelled.") : null,
      v.state === "ready" ? h("p", { class: "notice", role: "status" }, v.current
        ? "Ready, and current: hub users get it as their kernel."
        : "Ready. It is not the current version.") : null,
      timeline(v),
      h("dl", { class: "facts" },
        h("dt", {}, "Submitted"), h("dd", {}, when(v.created_at), v.submitted_by
          ? ` by ${v.submitted_by}` : ""),
        v.message ? [h("dt", {}, "Message"), h("dd", {}, v.message)] : null,
        h("dt", {}, "How"), h("dd", {}, v.kind === "lock" ? "a pushed conda-lock.yml, built as it is"
          : v.preview ? "the lock its preview showed" : v.solve === "minimal" && v.base_version
            ? `solved on v${v.base_version}, keeping what it could` : "solved afresh"),
        h("dt", {}, "Took"), h("dd", {}, duration(between(v.started_at || v.created_at,
          v.finished_at))),
        v.prefix_bytes ? [h("dt", {}, "Size"), h("dd", {}, `${bytes(v.prefix_bytes)}, `,
          `${v.packages.length} packages`)] : null),
      h("div", { class: "actions" }, actions),
      v.state === "ready" && v.dask ? [h("h2", {}, "Dask"), daskView(v.dask)] : null);
  }

  async function refresh() {
    detail = await api(path);
    redraw(detail);
    return detail;
  }

  /** The head again for a new state; a focused control keeps the focus (by its id). */
  function redraw(v) {
    const focused = head.contains(document.activeElement) ? document.activeElement.id : "";
    renderHead(v);
    const again = focused && document.getElementById(focused);
    if (again) again.focus();
  }

  async function cancel() {
    try {
      const out = await api(`${path}/cancel`, { method: "POST" });
      announce(`Cancel requested: ${out.state}.`);
      await refresh();
    } catch (err) { fill(problem, alertBox(err.message)); }
  }

  async function activate() {
    try {
      await api(`${base}/rollback`, { method: "POST", json: { version: Number(number) } });
      announce(`v${number} is now current.`);
      await refresh();
    } catch (err) { fill(problem, alertBox(err.message)); }
  }

  let v;
  try {
    v = await refresh();
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      fill(view, h("h1", {}, "No such build"), alertBox(err.message));
      return null;
    }
    throw err;
  }
  fill(view, head, problem, packs, h("h2", { id: "log-h" }, "Log"), logNote, logBox);
  loadPacks(v);
  if (TERMINAL.has(v.state)) {
    const text = await api(`${path}/log`);
    logBox.textContent = text || "";
    logNote.textContent = text ? "" : "This build left no log.";
    logBox.scrollTop = logBox.scrollHeight;
    return null;
  }
  logNote.textContent = "Following the build as it runs…";
  stopFollowing = followLog(`${path}/log`, {
    onLog: appendLog,
    onRestart: () => { logBox.textContent = ""; },
    onState: async (state) => {
      if (TERMINAL.has(state)) {
        logNote.textContent = "";
        const done = await refresh();
        loadPacks(done);
        announce(done.state === "failed" ? `Build failed: ${done.error || ""}`
          : `Build ${done.state}.`);
      } else {
        redraw({ ...detail, state });
        announce(`Build ${state}.`);
      }
    },
    onError: async () => {  // the stream closed for good: say where the build is
      const done = await refresh().catch((err) => {
        fill(problem, alertBox(err.message));
        return null;
      });
      logNote.textContent = done && TERMINAL.has(done.state) ? ""
        : "Lost the live log; reload the page to follow it again.";
    },
  });
  return () => stopFollowing && stopFollowing();
}
