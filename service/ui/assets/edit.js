// Edit an environment (or make a new one): the spec in an editor, packages picked from the
// channels, a message; Preview solves it as the build would and shows the diff against
// current, the Dask verdict and the quota estimate; Build builds exactly that lock. Or a
// conda-lock.yml uploaded instead of a spec.

import { ApiError, api } from "./api.js";
import { daskView } from "./dask.js";
import { alertBox, announce, bytes, envHref, fill, h, when } from "./dom.js";
import { diffView } from "./diff.js";
import { SpecEditor } from "./editor.js";

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const TEMPLATE = "channels:\n  - conda-forge\ndependencies:\n  - python=3.11\n  - ipykernel\n";

function quotaView(q) {
  if (q.quota_bytes === null) {
    return h("p", {}, "No quota is set for this namespace",
      q.estimate_bytes !== null ? `; this build adds about ${bytes(q.estimate_bytes)} of new packages.` : ".");
  }
  return h("p", { class: q.fits ? "" : "error" },
    `This build adds about ${bytes(q.estimate_bytes)} of new packages to the `,
    `${bytes(q.used_bytes)} used of a ${bytes(q.quota_bytes)} quota. `,
    q.fits ? "It fits." : "It does not fit: the build would be refused; delete versions or let GC collect them first.");
}

export async function render(view, { ns, name }, ctx) {
  const creating = !name;
  ctx.title(creating ? "New environment" : `Edit ${ns}/${name}`);
  let env = null;
  let text = TEMPLATE;
  if (!creating) {
    env = await api(`environments/${ns}/${name}`);
    const number = env.current_version || (env.versions.length
      ? env.versions[env.versions.length - 1].number : null);
    const base = env.versions.find((v) => v.number === number);
    if (base) {  // a pushed lock has no spec: its packages pinned, as an environment.yml
      text = await api(`environments/${ns}/${name}/versions/${base.number}/${
        base.kind === "lock" ? "environment.yml" : "spec"}`);
    }
  }

  const editor = new SpecEditor({ id: "spec", label: "environment.yml", value: text });
  const message = h("input", { id: "message", type: "text", maxlength: 500, class: "wide",
    placeholder: "e.g. add geopandas for the flood model" });
  const minimal = h("input", { id: "minimal", type: "checkbox", checked: true });
  const problem = h("div");
  const previewOut = h("section", { id: "preview", "aria-labelledby": "preview-h" });
  const previewButton = h("button", { type: "submit", class: "primary" }, "Preview");
  const buildButton = h("button", { type: "button", disabled: true }, "Build");
  let shown = null;  // the preview on screen, and the text and target it was made from

  // where: the namespace and name (chosen here for a new environment)
  const nsSelect = creating ? h("select", { id: "namespace" }, ctx.writable().map((n) =>
    h("option", { value: n, selected: n === ns }, n))) : null;
  const nameInput = creating ? h("input", { id: "name", type: "text", required: true,
    pattern: NAME.source, maxlength: 64, autocomplete: "off", spellcheck: "false",
    "aria-describedby": "name-hint" }) : null;
  const target = () => (creating ? [nsSelect.value, nameInput.value.trim()] : [ns, name]);
  const targetOk = () => {
    const [n, e] = target();
    const ok = Boolean(n) && NAME.test(e);
    if (nameInput) nameInput.setAttribute("aria-invalid", ok || !nameInput.value ? "false" : "true");
    return ok;
  };

  function stale() {  // an edit after a preview: Build must not build what is not shown
    if (shown && (shown.text !== editor.value || shown.where.join("/") !== target().join("/")
      || shown.minimal !== minimal.checked)) {
      shown = null;
      buildButton.disabled = true;
      fill(previewOut, h("p", { class: "muted" }, "The spec changed since the preview: preview again to build it."));
    }
  }
  editor.area.addEventListener("input", stale);
  minimal.addEventListener("change", stale);
  if (nameInput) nameInput.addEventListener("input", () => { targetOk(); stale(); });
  if (nsSelect) nsSelect.addEventListener("change", stale);

  async function preview(event) {
    event.preventDefault();
    fill(problem);
    if (!targetOk()) {
      fill(problem, alertBox("Name the environment: letters, digits, '.', '_' and '-', at most 64."));
      if (nameInput) nameInput.focus();
      return;
    }
    // what is sent is what Build may build: an edit during the solve makes it stale
    const sent = { text: editor.value, where: target(), minimal: minimal.checked };
    const where = sent.where;
    previewButton.disabled = true;
    buildButton.disabled = true;
    fill(previewOut, h("p", { class: "muted" }, "Solving… (this is what the build would install)"));
    try {
      const result = await api(`environments/${where[0]}/${where[1]}/preview`, {
        method: "POST", text: sent.text,
        query: { update: sent.minimal ? "minimal" : "full" } });
      editor.clear();
      shown = { result, ...sent };
      fill(previewOut, ...previewView(result));
      buildButton.disabled = Boolean(result.dask && !result.dask.builds) || !result.quota.fits;
      announce(`Preview ready: ${previewOut.querySelector("[data-summary]").textContent}`);
      stale();
    } catch (err) {
      fill(previewOut);
      if (err instanceof ApiError && err.status === 422) {
        editor.fail(err.message, err.line ? [err.line] : editor.linesNamed(err.message));
      } else {
        fill(problem, alertBox(err.message));
      }
    } finally {
      previewButton.disabled = false;
    }
  }

  function previewView(p) {
    const base = p.base_version ? `against v${p.base_version} (current)` : "a new environment";
    return [
      h("h2", { id: "preview-h" }, "Preview"),
      h("p", {}, `Solved ${p.solve === "minimal" && p.base_version
        ? `on v${p.base_version}, keeping everything else as it is` : "afresh"}; `,
      `the diff is ${base}. Build it before it expires (`, when(p.expires_at), ")."),
      diffView(p.diff, `Packages on ${p.diff.platform}`),
      h("h3", {}, "Dask"), daskView(p.dask),
      h("h3", {}, "Quota"), quotaView(p.quota),
    ];
  }

  async function build() {
    if (!shown) return;
    const [n, e] = shown.where;
    buildButton.disabled = true;
    try {
      const accepted = await api(`environments/${n}/${e}/versions`, { method: "POST",
        text: "", query: { preview: shown.result.preview, message: message.value.trim() } });
      location.hash = envHref(n, e, `/v/${accepted.version}`);
    } catch (err) {
      fill(problem, alertBox(err.message));
      buildButton.disabled = false;
    }
  }
  buildButton.addEventListener("click", build);

  // the package picker
  const pkgInput = h("input", { id: "pkg-search", type: "search", autocomplete: "off",
    spellcheck: "false", placeholder: "e.g. geopandas", "aria-controls": "pkg-results" });
  const pkgResults = h("ul", { id: "pkg-results", "aria-label": "Packages found" });
  const pkgStatus = h("p", { class: "hint", "aria-live": "polite" });
  let searchTimer = null, searchRun = 0;
  pkgInput.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(async () => {
      const term = pkgInput.value.trim();
      const run = ++searchRun;
      if (!term) { fill(pkgResults); pkgStatus.textContent = ""; return; }
      try {
        const found = await api("packages", { query: { search: term, limit: 20 } });
        if (run !== searchRun) return;
        pkgStatus.textContent = found.packages.length
          ? `${found.packages.length} package${found.packages.length === 1 ? "" : "s"} found.`
          : `No package matches “${term}”.`;
        fill(pkgResults, found.packages.map((p) => h("li", {},
          h("span", {}, h("strong", {}, p.name), " ", h("span", { class: "muted" },
            `${p.latest} · ${p.channel.replace(/^.*\//, "")}`)),
          h("button", { type: "button", class: "small", "aria-label": `Add ${p.name}`,
            onclick: () => {
              const done = editor.addDependency(p.name);
              stale();
              announce({ added: `Added ${p.name} to the dependencies.`,
                present: `${p.name} is already a dependency.`,
                unsupported: `Add ${p.name} to the dependencies by hand: this list spans lines.`,
              }[done]);
            } }, "Add"))));
      } catch (err) {
        if (run === searchRun) pkgStatus.textContent = err.message;
      }
    }, 250);
  });

  // a conda-lock.yml instead of a spec
  const lockFile = h("input", { id: "lock-file", type: "file", accept: ".yml,.yaml" });
  const lockButton = h("button", { type: "button" }, "Build this lock");
  lockButton.addEventListener("click", async () => {
    fill(problem);
    const file = lockFile.files[0];
    if (!file) { fill(problem, alertBox("Choose a conda-lock.yml first.")); lockFile.focus(); return; }
    if (!targetOk()) { fill(problem, alertBox("Name the environment first.")); return; }
    const [n, e] = target();
    lockButton.disabled = true;
    try {
      const accepted = await api(`environments/${n}/${e}/locks`, { method: "POST", file,
        query: { message: message.value.trim() } });
      location.hash = envHref(n, e, `/v/${accepted.version}`);
    } catch (err) {
      fill(problem, alertBox(`${file.name}: ${err.message}`));
    } finally {
      lockButton.disabled = false;
    }
  });

  const form = h("form", { id: "edit-form", "aria-label": "Spec" }, editor.element,
    h("label", { for: "message" }, "Message (why this change)"), message,
    env && env.current_version ? h("p", {}, h("label", { class: "inline", for: "minimal" }, minimal,
      `Keep everything else as it is (only what the edit needs moves; off: newest of everything)`))
      : null,
    h("div", { class: "actions" }, previewButton, buildButton));
  form.addEventListener("submit", preview);

  fill(view,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Environments"),
      creating ? null : [" › ", h("a", { href: envHref(ns, name) }, `${ns}/${name}`)]),
    h("h1", {}, creating ? "New environment" : `Edit ${ns}/${name}`),
    creating ? h("div", { class: "toolbar" },
      h("div", {}, h("label", { for: "namespace" }, "Namespace"), nsSelect),
      h("div", {}, h("label", { for: "name" }, "Name"), nameInput),
      h("p", { id: "name-hint", class: "hint" }, "Letters, digits, '.', '_' and '-'.")) : null,
    problem,
    h("div", { class: "grid" },
      h("div", {}, form),
      h("div", {},
        h("section", { class: "card picker", "aria-labelledby": "picker-h" },
          h("h2", { id: "picker-h", class: "flush" }, "Add a package"),
          h("label", { for: "pkg-search" }, "Search the channels"), pkgInput, pkgStatus,
          pkgResults),
        h("section", { class: "card", "aria-labelledby": "upload-h" },
          h("h2", { id: "upload-h", class: "flush" }, "Or upload a lock"),
          h("p", { class: "hint" }, "A conda-lock.yml (from ", h("code", {}, "envyard lock"),
            " or conda-lock) is built exactly as it is, without solving."),
          h("label", { for: "lock-file" }, "conda-lock.yml"), lockFile,
          h("div", { class: "actions" }, lockButton)))),
    previewOut);
  if (creating) nameInput.focus();
}
