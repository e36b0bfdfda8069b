// The UI's entry: who is logged in, the navigation, and the router from the URL's hash
// (#/env/team/geo) to a page module. Each page module exports
// `render(view, params, ctx)` (view: the element it draws in) and may return a function that
// stops its background work.

import { ApiError, api, toLogin, whoami } from "./api.js";
import { alertBox, fill, h } from "./dom.js";

// a name is the service's: a letter or digit first, then letters, digits, '.', '_', '-'
const N = "([A-Za-z0-9][A-Za-z0-9._-]{0,63})";
const ROUTES = [
  [/^\/?$/, "environments", []],
  [new RegExp(`^/new(?:/${N})?$`), "edit", ["ns"]],
  [new RegExp(`^/env/${N}/${N}$`), "environment", ["ns", "name"]],
  [new RegExp(`^/env/${N}/${N}/edit$`), "edit", ["ns", "name"]],
  [new RegExp(`^/env/${N}/${N}/v/([1-9][0-9]{0,9})$`), "build", ["ns", "name", "number"]],
  [new RegExp(`^/ns/${N}$`), "namespace", ["ns"]],
  [/^\/admin$/, "admin", []],
];

const RANK = { viewer: 1, developer: 2, admin: 3 };

/** What the pages know about the caller. */
class Context {
  constructor(me, namespaces) {
    this.me = me;
    this.namespaces = namespaces;  // the ones that exist and the caller may read
  }

  role(ns) {  // as the service decides: the namespace's own entry, else '*'
    return this.me.roles[ns] || this.me.roles["*"] || null;
  }

  can(ns, needed) {
    const role = this.role(ns);
    return Boolean(role) && RANK[role] >= RANK[needed];
  }

  /** Namespaces the caller could create an environment in (named in its roles). */
  writable() {
    const named = Object.keys(this.me.roles).filter((ns) => ns !== "*");
    const known = new Set([...named, ...this.namespaces]);
    return [...known].filter((ns) => this.can(ns, "developer")).sort();
  }

  get admin() { return Boolean(this.me.roles["*"]); }

  title(text) { document.title = text ? `${text} · envyard` : "envyard"; }
}

let stop = null;
let ctx = null;
let first = true;
let generation = 0;  // each navigation's number: a page still loading for an older one
                     // draws into a view that is no longer on screen, and is stopped
function parse() {
  let path;
  try {
    path = decodeURIComponent(location.hash.replace(/^#/, "") || "/");
  } catch {
    return { page: null, params: {} };  // a malformed escape: no such page
  }
  for (const [pattern, page, names] of ROUTES) {
    const match = pattern.exec(path);
    if (match) {
      const params = Object.fromEntries(names.map((n, i) => [n, match[i + 1]]));
      return { page, params };
    }
  }
  return { page: null, params: {} };
}

function nav(current) {
  const items = [["#/", "Environments", "environments"]];
  if (ctx.writable().length) items.push(["#/new", "New environment", "edit-new"]);
  for (const ns of ctx.namespaces) items.push([`#/ns/${ns}`, ns, `ns-${ns}`]);
  if (ctx.admin) items.push(["#/admin", "Admin", "admin"]);
  const hub = document.body.dataset.hub;
  fill(document.getElementById("nav"), h("ul", {}, items.map(([href, text, key]) =>
    h("li", {}, h("a", { href, "aria-current": key === current ? "page" : null }, text))),
  hub ? h("li", {}, h("a", { href: `${hub}/hub/home` }, "Hub")) : null));
}

async function route() {
  const mine = ++generation;
  if (stop) { stop(); stop = null; }
  const main = document.getElementById("main");
  const { page, params } = parse();
  let key = page;
  if (page === "edit" && !params.name) key = "edit-new";
  if (page === "namespace") key = `ns-${params.ns}`;
  nav(key);
  api("namespaces").then((list) => {  // a namespace made meanwhile joins the menu
    ctx.namespaces = list.map((n) => n.name);
    if (mine === generation) nav(key);
  }).catch(() => {});
  const view = h("div", { class: "view" });
  fill(main, view);
  if (!page) {
    ctx.title("Not found");
    fill(view, h("h1", {}, "Not found"), h("p", {}, "No page here. ",
      h("a", { href: "#/" }, "See your environments.")));
    main.removeAttribute("aria-busy");
    return;
  }
  fill(view, h("p", { class: "muted" }, "Loading…"));
  main.setAttribute("aria-busy", "true");  // (tests wait for it to go, too)
  let stopper = null;
  try {
    const module = await import(`./${page}.js`);
    if (mine === generation) stopper = (await module.render(view, params, ctx)) || null;
  } catch (err) {
    if (mine === generation) {
      fill(view, h("h1", {}, "Something went wrong"), alertBox(err instanceof ApiError
        ? err.message : `${err.name}: ${err.message}`));
    }
    if (!(err instanceof ApiError)) console.error(err);
  }
  if (mine !== generation) {  // the user moved on while this page loaded
    if (stopper) stopper();
    return;
  }
  stop = stopper;
  main.removeAttribute("aria-busy");
  if (!first) {  // a screen reader hears the new page's heading
    const heading = view.querySelector("h1");
    if (heading) { heading.tabIndex = -1; heading.focus(); }
  }
  first = false;
}

async function boot() {
  // the skip link must not become a route (#main): it only moves focus
  document.querySelector(".skip").addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("main").focus();
  });
  let me, namespaces;
  try {
    [me, namespaces] = await Promise.all([whoami(), api("namespaces")]);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { toLogin(); return; }
    const main = document.getElementById("main");
    fill(main, h("h1", {}, "envyard is not answering"), alertBox(err.message));
    main.removeAttribute("aria-busy");
    return;
  }
  ctx = new Context(me, namespaces.map((n) => n.name));
  document.getElementById("who").textContent = me.name;
  window.addEventListener("hashchange", route);
  await route();
}

boot();
