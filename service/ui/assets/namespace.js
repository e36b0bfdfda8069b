// A namespace: its usage against the quota, what garbage collection would collect next and
// why (the plan's rules and bytes), the retention rules in force, its environments, and
// who holds which role. Its admins can change the quota and the retention rules here.

import { ApiError, api } from "./api.js";
import { alertBox, announce, bytes, envHref, fill, h, stateBadge, table } from "./dom.js";

const SOURCE = { service: "the service's default", namespace: "this namespace",
  environment: "the environment" };

function usageBar(used, quota) {
  if (quota === null || quota === undefined) {
    return h("p", {}, `${bytes(used)} used; no quota.`);
  }
  const share = quota > 0 ? used / quota : 1;
  const percent = Math.round(share * 100);
  const fillSpan = h("span");
  fillSpan.style.width = `${Math.min(100, Math.max(0, percent))}%`;  // (CSSOM: CSP allows it)
  return h("div", {},
    h("p", { id: "usage-text" }, `${bytes(used)} of ${bytes(quota)} (${percent}%)`),
    h("div", { class: `bar${share > 1 ? " over" : ""}`, role: "meter", "aria-valuemin": 0,
      "aria-valuemax": quota, "aria-valuenow": Math.min(used, quota),
      "aria-valuetext": `${bytes(used)} of ${bytes(quota)}`,
      "aria-labelledby": "usage-h" }, fillSpan));
}

export async function render(view, { ns }, ctx) {
  ctx.title(ns);
  const admin = ctx.can(ns, "admin");
  const problem = h("div");
  const [usage, plan, policy, members, detail] = await Promise.all([
    api("usage", { query: { namespace: ns } }), api("gc/plan", { query: { namespace: ns } }),
    api(`namespaces/${ns}/policy`).catch(() => null), api(`namespaces/${ns}/members`),
    api(`namespaces/${ns}`).catch((err) => {
      if (err instanceof ApiError && err.status === 404) return { environments: [] };
      throw err;
    })]);
  const mine = usage[ns] || { bytes: 0, environments: {}, quota_bytes: null };
  const doomed = plan.filter((r) => r.delete);
  const frees = doomed.reduce((n, r) => n + r.bytes, 0);

  const quotaForm = admin ? (() => {
    const input = h("input", { id: "quota-gb", type: "number", min: 0, step: "any",
      value: mine.quota_bytes !== null ? mine.quota_bytes / 1e9 : "" });
    const form = h("form", { class: "toolbar" }, h("div", {},
      h("label", { for: "quota-gb" }, "Quota (GB; empty: none)"), input),
    h("div", {}, h("button", { type: "submit" }, "Set quota")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const value = input.value.trim();
      try {
        await api(`namespaces/${ns}/quota`, { method: "PUT",
          json: { bytes: value === "" ? null : Math.round(Number(value) * 1e9) } });
        announce("Quota set.");
        await render(view, { ns }, ctx);
        document.getElementById("quota-gb").focus();  // (the page was drawn again)
      } catch (err) { fill(problem, alertBox(err.message)); }
    });
    return form;
  })() : null;

  const retention = policy ? policy.retention : null;
  const retentionForm = admin && retention ? (() => {
    const fields = [["keep_last", "Keep the newest ready versions", "1"],
      ["keep_days", "Keep versions younger than (days)", "any"],
      ["failed_log_days", "Keep failed builds' logs (days)", "any"]];
    const inputs = Object.fromEntries(fields.map(([key, , step]) => [key, h("input", {
      id: `r-${key}`, type: "number", min: 0, step, value: retention[key].source === "namespace"
        ? retention[key].value ?? "" : "", placeholder: String(retention[key].value ?? "none") })]));
    const form = h("form", { class: "toolbar" }, fields.map(([key, label]) => h("div", {},
      h("label", { for: `r-${key}` }, label), inputs[key])),
    h("div", {}, h("button", { type: "submit" }, "Set rules")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = Object.fromEntries(fields.map(([key]) => [key,
        inputs[key].value === "" ? null : Number(inputs[key].value)]));
      try {
        await api(`retention/${ns}`, { method: "PUT", json: body });
        announce("Retention rules set.");
        await render(view, { ns }, ctx);
        document.getElementById("r-keep_last").focus();
      } catch (err) { fill(problem, alertBox(err.message)); }
    });
    return h("div", {}, h("p", { class: "hint" }, "Empty: the service's default."), form);
  })() : null;

  fill(view,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Environments")),
    h("h1", {}, `Namespace ${ns}`),
    problem,
    h("div", { class: "grid" },
      h("section", { class: "card", "aria-labelledby": "usage-h" },
        h("h2", { id: "usage-h", class: "flush" }, "Usage"),
        usageBar(mine.bytes, mine.quota_bytes),
        h("p", { class: "hint" }, "Files shared by several versions count once."),
        quotaForm),
      h("section", { class: "card", "aria-labelledby": "gc-h" },
        h("h2", { id: "gc-h", class: "flush" }, "Next garbage collection"),
        h("p", { id: "gc-summary" }, doomed.length
          ? `Would collect ${doomed.length} version${doomed.length === 1 ? "" : "s"} and free ${bytes(frees)}.`
          : "Would collect nothing here."),
        retention ? h("dl", { class: "facts" }, [["keep_last", "Newest ready kept"],
          ["keep_days", "Kept for (days)"], ["failed_log_days", "Failed logs kept (days)"]]
          .map(([key, label]) => [h("dt", {}, label), h("dd", {},
            String(retention[key].value ?? "—"), h("span", { class: "muted" },
              ` (${SOURCE[retention[key].source]})`))])) : null,
        retentionForm)),
    h("h2", {}, "What GC keeps and collects"),
    table("Every version that still has files, with the rule that decides it",
      [{ label: "Version" }, { label: "State" }, { label: "Decision" }, { label: "Why" },
        { label: "Frees", num: true }],
      plan.map((r) => [h("a", { href: envHref(r.namespace, r.name, `/v/${r.number}`) },
        `${r.name} v${r.number}`), stateBadge(r.state),
      r.delete ? h("strong", { class: "error" }, "collect") : "keep", r.reason,
      r.delete ? bytes(r.bytes) : "—"]), { empty: "No versions with files." }),
    h("h2", {}, "Environments"),
    table(null, [{ label: "Environment" }, { label: "Current", num: true },
      { label: "Newest" }, { label: "Size", num: true }],
    detail.environments.map((e) => [h("a", { href: envHref(ns, e.name) }, e.name),
      e.current_version ? `v${e.current_version}` : "—",
      e.latest_version ? [`v${e.latest_version} `, stateBadge(e.latest_state)] : "—",
      bytes((mine.environments[e.name] || {}).bytes)]), { empty: "No environments." }),
    h("h2", {}, "Members"),
    table(null, [{ label: "Who" }, { label: "Role" }, { label: "Through" },
      { label: "Expires", narrow: true }], members.members.map((m) => [m.who, m.role, m.via,
      m.expires_at ? m.expires_at.slice(0, 10) : "—"]), { empty: "Nobody holds a role here." }));
}
