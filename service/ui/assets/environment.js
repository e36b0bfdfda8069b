// One environment: what it is for, its current version, every version's history (state,
// who, when, why, how long, size, Dask verdict, held), a diff of any two versions, the
// actions a developer has (activate, hold, rebuild, delete), and every download.

import { ApiError, api, apiUrl } from "./api.js";
import {
  alertBox, announce, between, bytes, confirmDialog, duration, envHref, fill, h, stateBadge,
  table, verdictBadge, when,
} from "./dom.js";
import { diffView } from "./diff.js";

const DOWNLOADS = [
  ["spec", "environment.yml as submitted", "spec"],
  ["lock", "conda-lock.yml", "lock"],
  ["explicit", "explicit list (@EXPLICIT)", "explicit"],
  ["environment.yml", "pinned environment.yml", "environment.yml"],
  ["pack", "conda-pack archive", "pack"],
];

export async function render(view, { ns, name }, ctx) {
  ctx.title(`${ns}/${name}`);
  const base = `environments/${ns}/${name}`;
  const developer = ctx.can(ns, "developer");
  const problem = h("div");
  const say = (err) => fill(problem, alertBox(err instanceof ApiError ? err.message : String(err)));

  async function load() {
    const env = await api(base);
    const detail = env.current_version
      ? await api(`${base}/versions/${env.current_version}`) : null;
    fill(view, ...page(env, detail));
  }

  function page(env, detail) {
    const versions = [...env.versions].reverse();  // newest first
    return [
      h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Environments"), " › ",
        h("a", { href: `#/ns/${ns}` }, ns)),
      h("h1", {}, `${ns}/${name}`),
      problem,
      description(env),
      h("div", { class: "grid" }, facts(env, detail), downloads(env, versions)),
      developer ? actions(env) : null,
      h("h2", { id: "history" }, "History"),
      history(env, versions),
      h("h2", { id: "compare" }, "Compare versions"),
      compare(versions),
    ];
  }

  function description(env) {
    const text = h("p", { id: "description" }, env.description || h("span", { class: "muted" },
      "No description."));
    if (!developer) return text;
    const edit = h("button", { type: "button", class: "small" }, "Edit description");
    edit.addEventListener("click", () => {
      const area = h("textarea", { id: "description-input", rows: 3, maxlength: 2000,
        class: "wide" });
      area.value = env.description || "";
      const form = h("form", { class: "card" }, h("label", { for: "description-input" },
        "Description"), area, h("div", { class: "actions" },
        h("button", { type: "submit", class: "primary" }, "Save"),
        h("button", { type: "button", onclick: () => load().catch(say) }, "Cancel")));
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
          await api(`${base}/description`, { method: "PUT",
            json: { description: area.value.trim() || null } });
          announce("Description saved.");
          await load();
        } catch (err) { say(err); }
      });
      wrap.replaceWith(form);
      area.focus();
    });
    const wrap = h("div", {}, text, edit);
    return wrap;
  }

  function facts(env, detail) {
    const image = detail && detail.image;
    return h("section", { class: "card", "aria-labelledby": "facts-h" },
      h("h2", { id: "facts-h", class: "flush" }, "Current version"),
      h("dl", { class: "facts" },
        h("dt", {}, "Version"), h("dd", {}, env.current_version
          ? h("a", { href: envHref(ns, name, `/v/${env.current_version}`) },
            `v${env.current_version}`) : "none is ready yet"),
        h("dt", {}, "Kernel"), h("dd", {}, env.kernel_name ? [h("code", { id: "kernel-name" },
          env.kernel_name), ` — “${env.kernel_display_name}” in the launcher`] : "—"),
        h("dt", {}, "Packages"), h("dd", {}, detail ? String(detail.packages.length) : "—"),
        h("dt", {}, "Size"), h("dd", {}, bytes(detail && detail.prefix_bytes)),
        h("dt", {}, "Dask"), h("dd", {}, detail ? verdictBadge(detail.dask_verdict) : "—"),
        h("dt", {}, "Image"), h("dd", {}, image && image.reference
          ? h("code", { id: "image-ref" }, image.reference)
          : image ? `${image.state}${image.error ? `: ${image.error}` : ""}` : "not built")));
  }

  function downloads(env, versions) {
    const usable = versions.filter((v) => v.state === "ready" || v.state === "failed"
      || v.state === "cancelled");
    const section = h("section", { class: "card", "aria-labelledby": "downloads-h" },
      h("h2", { id: "downloads-h", class: "flush" }, "Downloads"));
    if (!usable.length) return fill(section, section.firstChild, h("p", { class: "muted" },
      "Nothing to download yet."));
    const pick = h("select", { id: "download-version" }, usable.map((v) =>
      h("option", { value: v.number, selected: v.number === env.current_version },
        `v${v.number}${v.number === env.current_version ? " (current)" : ""} — ${v.state}`)));
    const list = h("ul", { id: "download-links" });
    const show = () => {
      const v = usable.find((x) => String(x.number) === pick.value) || usable[0];
      fill(list, DOWNLOADS.filter(([kind]) => (v.state === "ready" || kind === "spec")
        && (kind !== "spec" || v.kind === "spec"))
        .map(([path, label, kind]) => h("li", {}, h("a", {
          href: apiUrl(`${base}/versions/${v.number}/${path}`).href,
          download: "", "data-kind": kind }, label))));
    };
    pick.addEventListener("change", show);
    show();
    return fill(section, section.firstChild, h("label", { for: "download-version" }, "Version"),
      pick, list);
  }

  function actions(env) {
    const buttons = [h("a", { class: "button primary", href: envHref(ns, name, "/edit") },
      "Edit spec")];
    const current = env.versions.find((v) => v.number === env.current_version);
    if (current && current.kind === "spec") {  // (a pushed lock has no spec to solve again)
      buttons.push(h("button", { type: "button", onclick: () => rebuild(current.number) },
        "Rebuild current"));
    }
    buttons.push(h("button", { type: "button", class: "danger", onclick: () => remove() },
      "Delete environment…"));
    return h("div", { class: "actions", role: "group", "aria-label": "Environment actions" },
      buttons);
  }

  async function rebuild(number) {
    try {
      const accepted = await api(`${base}/versions/${number}/rebuild`, { method: "POST" });
      location.hash = envHref(ns, name, `/v/${accepted.version}`);
    } catch (err) { say(err); }
  }

  async function act(label, request) {
    try {
      await request();
      announce(label);
      await load();
    } catch (err) { say(err); }
  }

  async function remove() {
    let plan;
    try {
      plan = await api(`${base}/deletion`);
    } catch (err) { say(err); return; }
    const doomed = plan.versions.filter((r) => r.delete);
    const collected = doomed.length;
    const body = h("div", {},
      h("p", {}, `${ns}/${name} disappears from every list and from the kernels at once. `,
        `The next garbage collection removes ${collected} version${collected === 1 ? "" : "s"}`,
        ` and frees ${bytes(plan.bytes)} (files other versions share stay); each version's `,
        "spec and lock stay as a record."),
      plan.held.length ? h("p", { class: "error" }, `Held versions lose their hold: `,
        plan.held.map((n) => `v${n}`).join(", "), ".") : null,
      plan.building.length ? h("p", {}, "Builds in progress are cancelled: ",
        plan.building.map((n) => `v${n}`).join(", "), ".") : null,
      table("What GC then collects", [{ label: "Version" }, { label: "State" },
        { label: "Frees", num: true }], doomed.map((r) => [`v${r.number}`,
        stateBadge(r.state), bytes(r.bytes)]), { empty: "" }));
    const sure = await confirmDialog({ title: `Delete ${ns}/${name}?`, body,
      confirm: "Delete", danger: true });
    if (!sure) return;
    try {
      await api(base, { method: "DELETE", query: { force: plan.held.length ? "true" : null } });
      announce(`${ns}/${name} deleted.`);
      location.hash = "#/";
    } catch (err) { say(err); }
  }

  function history(env, versions) {
    const rows = versions.map((v) => {
      const current = v.number === env.current_version;
      const buttons = [];
      if (developer && v.state === "ready" && !current) {
        buttons.push(h("button", { type: "button", class: "small", onclick: () => act(
          `v${v.number} is now current.`, () => api(`${base}/rollback`,
            { method: "POST", json: { version: v.number } })) },
        env.current_version && v.number < env.current_version ? "Roll back to this"
          : "Make current"));
      }
      if (developer && !["deleted", "deleting"].includes(v.state)) {
        buttons.push(h("button", { type: "button", class: "small",
          onclick: () => act(v.held ? `v${v.number} released.`
          : `v${v.number} held.`, () => api(`${base}/versions/${v.number}/hold`,
          { method: v.held ? "DELETE" : "POST" })) }, v.held ? "Unhold" : "Hold"));
      }
      if (developer && v.kind === "spec" && v.state !== "deleting") {
        buttons.push(h("button", { type: "button", class: "small",
          onclick: () => rebuild(v.number) }, "Rebuild"));
      }
      return [
        h("a", { href: envHref(ns, name, `/v/${v.number}`) }, `v${v.number}`,
          current ? h("span", { class: "muted" }, " (current)") : null),
        stateBadge(v.state),
        v.submitted_by || "—",
        when(v.created_at),
        v.message || (v.error ? h("span", { class: "error" }, v.error.split("\n")[0]
          .slice(0, 160)) : "—"),
        duration(between(v.started_at || v.created_at, v.finished_at)),
        bytes(v.prefix_bytes),
        v.state === "ready" ? verdictBadge(v.dask_verdict) : "—",
        v.held ? "held" : "—",
        buttons.length ? h("div", { class: "actions flush" }, buttons) : "",
      ];
    });
    return table(null, [{ label: "Version" }, { label: "State" }, { label: "Who", narrow: true },
      { label: "When" }, { label: "Message" }, { label: "Took", num: true, narrow: true },
      { label: "Size", num: true, narrow: true }, { label: "Dask" }, { label: "Held" },
      { label: "Actions" }], rows, { empty: "No versions.",
      rowClass: (i) => versions[i].number === env.current_version ? "current" : null });
  }

  function compare(versions) {
    const readable = versions.filter((v) => v.state === "ready" || v.state === "deleted"
      || v.state === "deleting");
    if (readable.length < 2) {
      return h("p", { class: "muted" }, "Two built versions are needed to compare.");
    }
    const options = (selected) => readable.map((v) => h("option",
      { value: v.number, selected: v.number === selected }, `v${v.number}`));
    const a = h("select", { id: "diff-a" }, options(readable[1].number));
    const b = h("select", { id: "diff-b" }, options(readable[0].number));
    const out = h("div", { id: "diff-out" });
    const form = h("form", { class: "toolbar" },
      h("div", {}, h("label", { for: "diff-a" }, "From"), a),
      h("div", {}, h("label", { for: "diff-b" }, "To"), b),
      h("div", {}, h("button", { type: "submit" }, "Compare")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      fill(out, h("p", { class: "muted" }, "Comparing…"));
      try {
        const diff = await api(`${base}/versions/${a.value}/diff/${b.value}`);
        fill(out, diffView(diff, `v${a.value} → v${b.value} (${diff.platform})`));
        announce(`v${a.value} to v${b.value}: ${out.querySelector("[data-summary]").textContent}`);
      } catch (err) {
        fill(out, alertBox(err.message));
      }
    });
    return h("div", {}, form, out);
  }

  await load();
}
