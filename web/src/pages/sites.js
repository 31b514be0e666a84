// Sites with their statistics.
import { all, api } from "../api.js";
import { exportButton } from "../csv.js";
import { formatTime, h, table } from "../dom.js";

export async function renderSites(main) {
  const sites = await all("/sites");
  const stats = await Promise.all(sites.map((s) => api(`/sites/${s.id}/statistics`)
    .catch(() => ({}))));
  const rows = sites.map((s, i) => ({ ...s, ...stats[i] }));
  const columns = [
    { label: "Site", cell: (r) => h("a", { href: `/devices?site_id=${r.id}`, "data-link": true },
      r.name), value: (r) => r.name },
    { label: "Devices", cell: (r) => r.total_devices ?? "—", value: (r) => r.total_devices },
    { label: "Sensors", cell: (r) => r.total_sensors ?? "—", value: (r) => r.total_sensors },
    { label: "Active", cell: (r) => r.active_sensors ?? "—", value: (r) => r.active_sensors },
    { label: "Inactive", cell: (r) => r.inactive_sensors ?? "—",
      value: (r) => r.inactive_sensors },
    { label: "Maintenance", cell: (r) => r.maintenance_sensors ?? "—",
      value: (r) => r.maintenance_sensors },
    { label: "Readings", cell: (r) => (r.total_readings ?? 0).toLocaleString(),
      value: (r) => r.total_readings },
    { label: "Latest reading", cell: (r) => formatTime(r.latest_reading_ts),
      value: (r) => r.latest_reading_ts || "" },
  ];
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Sites"),
    exportButton("sites", columns, () => rows)),
  table(columns, rows, { caption: "Sites", empty: "No sites yet." }));
}
