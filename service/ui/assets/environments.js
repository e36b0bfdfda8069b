// Environments: every one the user may read, grouped by namespace, found by name or by a
// package of its current version, with state, current version, size, Dask verdict and the
// last change. No cap: every page of the API's find is followed.

import { ApiError, allPages } from "./api.js";
import { alertBox, announce, bytes, envHref, fill, h, stateBadge, verdictBadge, when }
  from "./dom.js";

const filters = { search: "", package: "", state: "", dask: "" };  // kept between visits

const STATES = ["", "building", "ready", "failed", "cancelled", "queued"];
const VERDICTS = ["", "ok", "mismatch", "none", "unchecked"];

function field(id, label, control) {
  return h("div", {}, h("label", { for: id }, label), control);
}

function select(id, values, current, labels = {}) {
  return h("select", { id }, values.map((v) => h("option", { value: v, selected: v === current },
    labels[v] || v || "any")));
}

/** Rows for `envs`; `namespace`: the group the rows before them ended in. */
function rowsOf(envs, namespace = null) {
  const body = document.createDocumentFragment();
  for (const e of envs) {
    if (e.namespace !== namespace) {
      namespace = e.namespace;
      body.append(h("tr", {}, h("th", { colspan: 7, scope: "rowgroup", class: "group" },
        h("a", { href: `#/ns/${namespace}` }, namespace))));
    }
    const state = e.latest_state === "ready" || !e.latest_state ? e.current_state
      : e.latest_state;
    body.append(h("tr", {},
      h("td", {}, h("a", { href: envHref(e.namespace, e.name) }, `${e.namespace}/${e.name}`),
        e.description ? h("div", { class: "hint" }, e.description) : null),
      h("td", {}, stateBadge(state)),
      h("td", { class: "num" }, e.current_version ? `v${e.current_version}` : "—"),
      h("td", { class: "num hide-narrow" }, bytes(e.current_bytes)),
      h("td", {}, e.current_version ? verdictBadge(e.dask) : "—"),
      h("td", { class: "hide-narrow" }, when(e.updated_at)),
      h("td", { class: "hide-narrow" }, e.updated_by || "—")));
  }
  return body;
}

export async function render(view, _params, ctx) {
  ctx.title("Environments");
  const search = h("input", { id: "f-search", type: "search", value: filters.search,
    placeholder: "name or description", autocomplete: "off" });
  const pkg = h("input", { id: "f-package", type: "search", value: filters.package,
    placeholder: "e.g. dask", autocomplete: "off", spellcheck: "false" });
  const state = select("f-state", STATES, filters.state);
  const dask = select("f-dask", VERDICTS, filters.dask, { none: "no Dask" });
  const summary = h("p", { class: "muted", id: "env-count" });
  const tbody = h("tbody");
  const result = h("div", { class: "table-wrap" }, h("table", { "aria-describedby": "env-count" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Environment"), h("th", { scope: "col" }, "State"),
      h("th", { scope: "col", class: "num" }, "Current"),
      h("th", { scope: "col", class: "num hide-narrow" }, "Size"),
      h("th", { scope: "col" }, "Dask"),
      h("th", { scope: "col", class: "hide-narrow" }, "Last change"),
      h("th", { scope: "col", class: "hide-narrow" }, "By"))), tbody));
  const problem = h("div");
  const form = h("form", { role: "search", "aria-label": "Find environments",
    class: "toolbar", onsubmit: (e) => { e.preventDefault(); load(); } },
  field("f-search", "Search", search), field("f-package", "Has package", pkg),
  field("f-state", "State", state), field("f-dask", "Dask", dask),
  h("div", {}, h("button", { type: "submit" }, "Find")));
  fill(view, h("h1", {}, "Environments"),
    ctx.writable().length ? h("div", { class: "actions" },
      h("a", { class: "button primary", href: "#/new" }, "New environment")) : null,
    form, problem, summary, result);

  let controller = null;
  let timer = null;
  const busy = (on) => {  // (the page's <main>, while this view is the one shown)
    const main = document.getElementById("main");
    if (view.isConnected) main.toggleAttribute("aria-busy", on);
  };
  async function load() {
    Object.assign(filters, { search: search.value.trim(), package: pkg.value.trim(),
      state: state.value, dask: dask.value });
    if (controller) controller.abort();
    controller = new AbortController();
    const mine = controller;
    fill(problem);
    summary.textContent = "Loading…";
    busy(true);
    try {
      const query = { search: filters.search, package: filters.package
        ? filters.package.split(/[\s,]+/).filter(Boolean) : null,
      state: filters.state, dask: filters.dask };
      let shown = 0;
      fill(tbody);
      const envs = await allPages("environments", "environments", query, (sofar) => {
        if (mine !== controller) return;  // each page's rows appended as it comes
        tbody.append(rowsOf(sofar.slice(shown), shown ? sofar[shown - 1].namespace : null));
        shown = sofar.length;
      });
      if (mine !== controller) return;
      result.hidden = !envs.length;
      const any = Object.values(filters).some(Boolean);
      summary.textContent = envs.length
        ? `${envs.length} environment${envs.length === 1 ? "" : "s"}${any ? " match" : ""}.`
        : any ? "No environment matches." : "No environments yet.";
      announce(summary.textContent);
    } catch (err) {
      if (err.name === "AbortError" || mine !== controller) return;
      summary.textContent = "";
      fill(problem, alertBox(err instanceof ApiError ? err.message : String(err)));
    } finally {
      if (mine === controller) busy(false);
    }
  }
  const soon = () => { clearTimeout(timer); timer = setTimeout(load, 250); };
  search.addEventListener("input", soon);
  pkg.addEventListener("input", soon);
  state.addEventListener("change", load);
  dask.addEventListener("change", load);
  await load();
  return () => { clearTimeout(timer); if (controller) controller.abort(); };
}
