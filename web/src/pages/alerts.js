// Alerts: filter by state and severity; acknowledge and resolve; changes arrive live.
import { all, api } from "../api.js";
import { exportButton } from "../csv.js";
import { badge, field, fill, formatTime, formatValue, h, select, table } from "../dom.js";
import { subscribe } from "../live.js";
import { flash } from "../main.js";

export async function renderAlerts(main) {
  const devices = await all("/devices");
  const deviceName = new Map(devices.map((d) => [d.id, d.name]));
  const state = select("state", [{ value: "", label: "Open (active or acknowledged)" },
    { value: "active", label: "Active" }, { value: "acknowledged", label: "Acknowledged" },
    { value: "resolved", label: "Resolved" }, { value: "all", label: "All" }], "");
  const severity = select("severity", ["", "info", "warning", "critical"].map((v) => (
    { value: v, label: v || "Any" })), "");
  const list = h("div", { "aria-live": "polite" });
  let alerts = [];

  const shown = (a) => {
    if (severity.value && a.severity !== severity.value) return false;
    if (state.value === "all") return true;
    if (!state.value) return a.state !== "resolved";
    return a.state === state.value;
  };
  const columns = [
    { label: "Started", cell: (a) => formatTime(a.started_at), value: (a) => a.started_at },
    { label: "Rule", cell: (a) => a.rule_name, value: (a) => a.rule_name },
    { label: "Severity", cell: (a) => badge(a.severity), value: (a) => a.severity },
    { label: "State", cell: (a) => h("span", { "data-alert-state": a.id }, badge(a.state)),
      value: (a) => a.state },
    { label: "Device", cell: (a) => h("a", { href: `/devices/${a.device_id}`, "data-link": true },
      deviceName.get(a.device_id) || `#${a.device_id}`), value: (a) => deviceName.get(a.device_id) },
    { label: "Key", cell: (a) => a.key || "—", value: (a) => a.key },
    { label: "Value", cell: (a) => formatValue(a.value), value: (a) => a.value },
    { label: "Threshold", cell: (a) => formatValue(a.threshold), value: (a) => a.threshold },
    { label: "Actions", cell: (a) => h("span", { class: "inline" },
      a.state === "active" ? h("button", { type: "button", onclick: () => act(a, "acknowledge"),
        "aria-label": `Acknowledge alert ${a.id}` }, "Acknowledge") : null,
      a.state !== "resolved" ? h("button", { type: "button", onclick: () => act(a, "resolve"),
        "aria-label": `Resolve alert ${a.id}` }, "Resolve") : null) },
  ];
  const visible = () => alerts.filter(shown);
  const draw = () => fill(list, table(columns, visible(), { caption: "Alerts",
    empty: "No alerts here. Rules are managed at /api/v1/alert-rules." }));

  async function load() {
    const query = { severity: severity.value || undefined };
    if (state.value && state.value !== "all") query.state = state.value;
    if (!state.value) {
      const [active, acknowledged] = await Promise.all([
        all("/alerts", { ...query, state: "active" }), all("/alerts", { ...query, state: "acknowledged" })]);
      alerts = active.concat(acknowledged);
    } else {
      alerts = (await api("/alerts", { query: { ...query, limit: 1000 } })).items;
    }
    alerts.sort((a, b) => (a.started_at < b.started_at ? 1 : -1));
    draw();
  }
  async function act(alert, action) {
    try {
      const changed = await api(`/alerts/${alert.id}/${action}`, { method: "POST" });
      upsert(changed);
    } catch (e) {
      flash(`Could not ${action}: ${e.message}`, "error");
    }
  }
  function upsert(changed) {
    const i = alerts.findIndex((a) => a.id === changed.id);
    if (i >= 0) alerts[i] = { ...alerts[i], ...changed };
    else alerts.unshift(changed);
    draw();
  }
  state.addEventListener("change", load);
  severity.addEventListener("change", draw);
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Alerts"),
    exportButton("alerts", columns.slice(0, 8), visible)),
  h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
    field("State", state), field("Severity", severity)), list);
  await load();
  return subscribe({ topic: "alerts" }, (message) => upsert(message.alert));
}
