// The fleet: every device with its online status, last seen and site; filters and search.
import { all, api } from "../api.js";
import { exportButton } from "../csv.js";
import { ago, badge, field, fill, h, select, table } from "../dom.js";
import { subscribe } from "../live.js";

export async function renderFleet(main) {
  const params = new URLSearchParams(location.search);
  const [sites, groups] = await Promise.all([all("/sites"), all("/groups")]);
  const siteName = new Map(sites.map((s) => [s.id, s.name]));
  const q = h("input", { type: "search", name: "q", value: params.get("q") || "",
                         placeholder: "Name or location" });
  const site = select("site_id", [{ value: "", label: "All sites" },
    ...sites.map((s) => ({ value: s.id, label: s.name }))], params.get("site_id"));
  const group = select("group_id", [{ value: "", label: "All groups" },
    ...groups.map((g) => ({ value: g.id, label: g.name }))], params.get("group_id"));
  const online = select("online", [{ value: "", label: "Any" }, { value: "true", label: "Online" },
    { value: "false", label: "Offline" }], params.get("online"));
  const status = select("status", ["", "active", "inactive", "maintenance"].map((v) => (
    { value: v, label: v || "Any" })), params.get("status"));
  const list = h("div", { "aria-live": "polite" });
  const count = h("p", { class: "muted" });
  let devices = [];

  const columns = [
    { label: "Device", cell: (d) => h("a", { href: `/devices/${d.id}`, "data-link": true }, d.name),
      value: (d) => d.name },
    { label: "Online", cell: (d) => badge(d.online ? "online" : "offline"),
      value: (d) => (d.online ? "online" : "offline") },
    { label: "Status", cell: (d) => d.status, value: (d) => d.status },
    { label: "Last seen", cell: (d) => h("time", { datetime: d.last_seen || "" }, ago(d.last_seen)),
      value: (d) => d.last_seen || "" },
    { label: "Site", cell: (d) => siteName.get(d.site_id) || "—",
      value: (d) => siteName.get(d.site_id) || "" },
    { label: "Type", cell: (d) => d.device_type || "—", value: (d) => d.device_type || "" },
    { label: "Location", cell: (d) => d.location || "—", value: (d) => d.location || "" },
  ];

  function draw() {
    fill(count, `${devices.length} device${devices.length === 1 ? "" : "s"}, `,
      `${devices.filter((d) => d.online).length} online`);
    fill(list, table(columns, devices, { caption: "Devices",
      empty: "No devices match. Register one with POST /api/v1/devices, or run make demo." }));
  }

  async function load() {
    const query = { q: q.value.trim(), site_id: site.value, group_id: group.value,
                    online: online.value, status: status.value };
    const shown = new URLSearchParams(Object.entries(query).filter(([, v]) => v)).toString();
    history.replaceState(null, "", `${location.pathname}${shown ? `?${shown}` : ""}`);
    devices = await all("/devices", query);
    draw();
  }

  let typing = null;
  q.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(load, 250);
  });
  for (const el of [site, group, online, status]) el.addEventListener("change", load);

  const form = h("form", { class: "filters", role: "search", onsubmit: (e) => {
    e.preventDefault();
    load();
  } }, field("Search", q), field("Site", site), field("Group", group),
  field("Online", online), field("Status", status));

  const exporter = exportButton("devices", columns, () => devices);
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Fleet"), exporter),
    form, count, list);
  await load();
  const summary = await api("/analytics/summary").catch(() => null);
  if (summary) {
    count.after(h("p", { class: "muted" }, `Readings today: ${summary.readings_today ?? "—"} · `,
      `active alerts: ${summary.active_alerts ?? "—"}`));
  }

  const stop = subscribe({ topic: "device-status" }, (message) => {
    const changed = message.device;
    const device = devices.find((d) => d.id === changed.id);
    if (!device) return;
    Object.assign(device, { online: changed.online, status: changed.status,
                            last_seen: changed.last_seen });
    draw();
  });
  const tick = setInterval(draw, 30000); // "last seen" ages
  return () => {
    stop();
    clearInterval(tick);
    clearTimeout(typing);
  };
}
