// The single-page app: a router over history paths, the header, and the pages.
import "./style.css";
import { api, loggedIn, logout, onSession } from "./api.js";
import { h, fill } from "./dom.js";
import { onLiveStatus, unsubscribeAll } from "./live.js";
import { renderAlerts } from "./pages/alerts.js";
import { renderDashboard } from "./pages/dashboard.js";
import { renderDevice } from "./pages/device.js";
import { renderFleet } from "./pages/fleet.js";
import { renderLogin } from "./pages/login.js";
import { renderReadings } from "./pages/readings.js";
import { renderSites } from "./pages/sites.js";

const routes = [
  [/^\/login$/, renderLogin, { public: true }],
  [/^\/(devices)?$/, renderFleet],
  [/^\/devices\/(\d+)$/, renderDevice],
  [/^\/sites$/, renderSites],
  [/^\/alerts$/, renderAlerts],
  [/^\/readings$/, renderReadings],
  [/^\/dashboard$/, renderDashboard],
];

const main = document.getElementById("main");
const flashBox = document.getElementById("flash");
let cleanup = null;
let me = null;
let firstRoute = true;

/** A message above the page: kind "error", "info" or "ok"; it stays until the next one. */
export function flash(text, kind = "info") {
  fill(flashBox, text ? h("p", { class: `flash flash-${kind}` }, text,
    h("button", { type: "button", class: "link", "aria-label": "Dismiss message",
                  onclick: () => fill(flashBox) }, "×")) : null);
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  route();
}

export function currentUser() {
  return me;
}

export function isAdmin() {
  return Boolean(me && (me.is_superadmin || ["owner", "admin"].includes(me.role)));
}

async function loadMe() {
  me = await api("/auth/me");
  fill(document.getElementById("who"), `${me.username} · ${me.organization?.name ?? ""}`);
  for (const el of document.querySelectorAll("[data-admin]")) el.hidden = !isAdmin();
}

async function route() {
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // a page's cleanup must not stop the next page
    }
    cleanup = null;
  }
  unsubscribeAll();
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const found = routes.find(([pattern]) => pattern.test(path));
  const top = document.getElementById("top");
  if (!found) {
    top.hidden = !loggedIn();
    fill(main, h("h1", {}, "Not found"), h("p", {}, "No page here. ",
      h("a", { href: "/devices", "data-link": true }, "Go to the fleet")));
    return;
  }
  const [pattern, render, options = {}] = found;
  if (!options.public && !loggedIn()) {
    navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`,
             { replace: true });
    return;
  }
  top.hidden = Boolean(options.public);
  for (const a of document.querySelectorAll("#nav a[data-link]")) {
    const current = path === a.getAttribute("href") ||
      (a.getAttribute("href") === "/devices" && path.startsWith("/devices")) ||
      (a.getAttribute("href") === "/devices" && path === "/");
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  closeMenu();
  try {
    if (!options.public && !me) await loadMe();
    fill(main);
    const params = path.match(pattern).slice(1);
    cleanup = (await render(main, ...params)) || null;
    // Moving to a new page: the keyboard and screen readers start at its content (a fresh
    // load starts at the top, with the skip link; the log-in page focuses its first field).
    if (!firstRoute && !options.public && document.activeElement === document.body) main.focus();
    firstRoute = false;
  } catch (error) {
    if (!loggedIn()) return; // the session ended: onSession sends to the log-in page
    fill(main, h("h1", {}, "Something went wrong"), h("p", { class: "error" }, error.message));
  }
}

function closeMenu() {
  document.getElementById("nav").classList.remove("open");
  document.getElementById("menu-toggle").setAttribute("aria-expanded", "false");
}

document.addEventListener("click", (event) => {
  const a = event.target.closest("a[data-link]");
  if (!a || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(a.getAttribute("href"));
});

document.getElementById("menu-toggle").addEventListener("click", () => {
  const nav = document.getElementById("nav");
  const open = nav.classList.toggle("open");
  document.getElementById("menu-toggle").setAttribute("aria-expanded", String(open));
});

document.getElementById("logout").addEventListener("click", async () => {
  await logout();
});

onSession((what) => {
  if (what === "expired") {
    me = null;
    flash("Your session has expired. Please log in again.", "error");
    navigate(`/login?next=${encodeURIComponent(location.pathname)}`, { replace: true });
  } else if (what === "logout") {
    me = null;
    flash("You are logged out.", "info");
    navigate("/login", { replace: true });
  }
});

onLiveStatus((live) => {
  const dot = document.getElementById("live");
  dot.hidden = !live;
});

window.addEventListener("popstate", route);
route();
