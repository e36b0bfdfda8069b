// A Dask pin check as people read it: the verdict, and each package that differs from
// what the cluster's scheduler and workers run (distributed's own comparison rules).

import { h, table, verdictBadge } from "./dom.js";

/** `report`: {applies, ok, lockstep, verdicts[{package, required, env, cluster, verdict}]},
 * with `policy` and `builds` when it comes from a preview. */
export function daskView(report) {
  if (!report || report.applies === undefined || report.applies === null) {
    return h("p", { class: "muted" }, "No Dask cluster pins are set: not checked.");
  }
  if (!report.applies) {
    return h("p", {}, verdictBadge("none"),
      " No distributed: nothing here talks to a Dask cluster.");
  }
  const differ = report.verdicts.filter((v) => v.verdict !== "match");
  let words = "Matches the cluster's pins.";
  if (!report.ok) {
    words = "Differs from the cluster's pins";
    if (report.policy) {
      words += report.builds ? `; the namespace's policy (${report.policy}) only warns.`
        : `; the namespace's policy (${report.policy}) refuses to build it.`;
    } else words += ".";
  }
  return h("div", { class: "dask" },
    h("p", {}, verdictBadge(report.ok ? "ok" : "mismatch"), " ", words),
    differ.length ? table("Packages that differ from the cluster", [{ label: "Package" },
      { label: "Here" }, { label: "Cluster" }, { label: "" }], differ.map((v) => [v.package,
      v.env || "—", v.cluster || "—", v.required ? "required" : "optional"]), { empty: "" })
      : null,
    report.lockstep ? h("p", { class: "error" }, report.lockstep) : null);
}
