// Admin: the build queue and the runners alive, the Dask cluster's pin set, and the upgrade
// what-if as a table (which environments can move to proposed pins, which conflict and on
// what). Nothing here is built: the what-if re-solves and reports.

import { ApiError, api } from "./api.js";
import { alertBox, announce, envHref, fill, h, stateBadge, table, when } from "./dom.js";

const PIN_NAMES = ["python", "dask", "distributed", "msgpack", "cloudpickle", "tornado",
  "toolz", "numpy", "pandas", "lz4"];

function triple(versions) {
  if (!versions) return "—";
  return ["python", "dask", "distributed"].map((k) => `${k} ${versions[k] || "—"}`).join(", ");
}

export async function render(view, _params, ctx) {
  ctx.title("Admin");
  if (!ctx.admin) {
    fill(view, h("h1", {}, "Admin"), alertBox("This page is for people with a role on every namespace ('*')."));
    return;
  }
  const [queue, pins] = await Promise.all([api("queue"), api("dask/pins").catch((err) => {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  })]);
  const problem = h("div");

  const inputs = Object.fromEntries(PIN_NAMES.map((n) => [n, h("input", { id: `pin-${n}`,
    type: "text", value: pins ? pins.versions[n] || "" : "", spellcheck: "false",
    autocomplete: "off", size: 12 })]));
  const whatIfOut = h("div", { id: "whatif-out", "aria-live": "polite" });
  const run = h("button", { type: "submit", class: "primary" }, "Check environments");
  const form = h("form", { id: "whatif-form" },
    h("div", { class: "toolbar" }, PIN_NAMES.map((n) => h("div", {},
      h("label", { for: `pin-${n}` }, n), inputs[n]))),
    h("div", { class: "actions" }, run));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const versions = Object.fromEntries(PIN_NAMES.map((n) => [n, inputs[n].value.trim()])
      .filter(([, v]) => v));
    run.disabled = true;
    fill(whatIfOut, h("p", { class: "muted" }, "Re-locking every environment with distributed…"));
    try {
      const result = await api("dask/upgrade", { method: "POST", json: { versions, apply: false } });
      const ok = result.rows.filter((r) => r.solvable).length;
      fill(whatIfOut, h("p", { id: "whatif-summary" },
        `${ok} of ${result.rows.length} environment${result.rows.length === 1 ? "" : "s"} can move to these pins.`),
      table(null, [{ label: "Environment" }, { label: "Now" }, { label: "Would be" },
        { label: "Verdict" }], result.rows.map((r) => {
        const [ns, name] = r.environment.split("/");
        return [h("a", { href: envHref(ns, name) }, r.environment), triple(r.current),
          triple(r.would_be), r.solvable ? h("span", { class: "badge v-ok" }, "can move")
            : h("div", {}, h("span", { class: "badge v-mismatch" }, "conflicts"),
              h("div", { class: "pre-wrap" }, r.conflict || ""))];
      }), { empty: "No environment has distributed." }));
      announce(whatIfOut.querySelector("p").textContent);
    } catch (err) {
      fill(whatIfOut, alertBox(err.message));
    } finally {
      run.disabled = false;
    }
  });

  fill(view, h("h1", {}, "Admin"), problem,
    h("h2", {}, "Build queue"),
    h("p", {}, `This replica's runner: ${queue.runner.kind}, ${queue.runner.concurrency} at once, `,
      `${queue.runner.pending} pending. Runners alive: ${queue.runners.length}.`),
    table(null, [{ label: "Build" }, { label: "State" }, { label: "Runner" },
      { label: "Queued" }, { label: "By", narrow: true }], queue.builds.map((b) => [
      h("a", { href: envHref(b.namespace, b.name, `/v/${b.number}`) },
        `${b.namespace}/${b.name} v${b.number}`),
      [stateBadge(b.state), b.cancelling ? " cancelling" : ""],
      b.claimed_by ? h("code", {}, b.claimed_by.slice(0, 12)) : "waiting",
      when(b.created_at), b.submitted_by || "—"]), { empty: "Nothing is queued or building." }),
    h("h2", {}, "Dask cluster pins"),
    pins ? h("p", {}, `From ${pins.source}.`) : h("p", { class: "muted" },
      "No pins are set: environments are not checked against a cluster."),
    pins ? table(null, [{ label: "Package" }, { label: "Version" }],
      Object.entries(pins.versions).map(([k, v]) => [k, v])) : null,
    h("h2", {}, "Upgrade what-if"),
    h("p", { class: "hint" }, "Proposed pins: every environment with distributed is locked ",
      "again against them (nothing is built) and shown here."),
    form, whatIfOut);
}
