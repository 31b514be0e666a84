// Readings review (admins): filter, include invalid ones, validate or archive one or a range.
import { all, api } from "../api.js";
import { exportButton } from "../csv.js";
import { badge, field, fill, formatTime, formatValue, h, select, table } from "../dom.js";
import { flash, isAdmin } from "../main.js";

export async function renderReadings(main) {
  if (!isAdmin()) {
    main.append(h("h1", {}, "Readings review"),
      h("p", {}, "Reviewing readings needs the admin role in your organization."));
    return;
  }
  const devices = await all("/devices");
  const device = select("device_id", [{ value: "", label: "All devices" },
    ...devices.map((d) => ({ value: d.id, label: d.name }))]);
  const keys = h("input", { name: "keys", placeholder: "temperature,humidity" });
  const start = h("input", { name: "start", value: "-24h" });
  const end = h("input", { name: "end", placeholder: "now" });
  const status = select("status", ["", "pending", "validated", "archived"].map((v) => (
    { value: v, label: v || "Any" })), "pending");
  const invalid = h("input", { type: "checkbox", name: "include_invalid" });
  const list = h("div");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const bulk = h("div", { class: "inline" });
  let rows = [];
  let cursor = null;

  const query = () => ({ device_id: device.value, keys: keys.value.trim(), start: start.value.trim(),
    end: end.value.trim(), status: status.value, include_invalid: invalid.checked || undefined,
    order: "desc", limit: 200 });
  const columns = [
    { label: "Time", cell: (r) => formatTime(r.ts), value: (r) => r.ts },
    { label: "Device", cell: (r) => devices.find((d) => d.id === r.device_id)?.name || r.device_id,
      value: (r) => r.device_id },
    { label: "Key", cell: (r) => r.key, value: (r) => r.key },
    { label: "Value", cell: (r) => formatValue(r.value, r.unit), value: (r) => r.value },
    { label: "Valid", cell: (r) => (r.valid ? "yes" : badge("invalid")), value: (r) => r.valid },
    { label: "Status", cell: (r) => badge(r.status), value: (r) => r.status },
    { label: "Review", cell: (r) => h("span", { class: "inline" },
      r.status === "pending" ? h("button", { type: "button", onclick: () => review(r, "validate"),
        "aria-label": `Validate ${r.key} at ${r.ts}` }, "Validate") : null,
      r.status !== "archived" ? h("button", { type: "button", onclick: () => review(r, "archive"),
        "aria-label": `Archive ${r.key} at ${r.ts}` }, "Archive") : null) },
  ];
  const draw = () => fill(list, table(columns, rows, { caption: "Readings",
    empty: "No readings match these filters." }));

  async function load(append = false) {
    const answer = await api("/readings", { query: { ...query(), cursor: append ? cursor : undefined } });
    rows = append ? rows.concat(answer.items) : answer.items;
    cursor = answer.next_cursor;
    more.hidden = !cursor;
    draw();
  }
  async function review(reading, action) {
    try {
      const changed = await api(`/readings/${encodeURIComponent(reading.id)}/${action}`,
        { method: "PUT" });
      Object.assign(reading, changed);
      draw();
    } catch (e) {
      flash(`Could not ${action}: ${e.message}`, "error");
    }
  }
  async function reviewRange(action) {
    if (!device.value) {
      flash("Choose a device to review a whole range.", "error");
      return;
    }
    try {
      const answer = await api("/readings/review", { method: "POST", body: {
        action, device_id: Number(device.value), start: start.value.trim() || "-24h",
        end: end.value.trim() || "now" } });
      flash(`${action === "validate" ? "Validated" : "Archived"} ${answer.count ?? answer.changed ?? 0} readings.`, "ok");
      await load();
    } catch (e) {
      flash(`Could not ${action}: ${e.message}`, "error");
    }
  }
  more.addEventListener("click", () => load(true));
  fill(bulk, h("button", { type: "button", onclick: () => reviewRange("validate") },
    "Validate the range"), h("button", { type: "button", onclick: () => reviewRange("archive") },
    "Archive the range"));
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    load().catch((err) => flash(err.message, "error"));
  } }, field("Device", device), field("Keys", keys), field("From", start, "-24h, ISO time"),
  field("To", end), field("Status", status),
  h("div", { class: "field check" }, invalid, h("label", { for: "inc-invalid" }, "Include invalid")),
  h("button", { type: "submit" }, "Show"));
  invalid.id = "inc-invalid";
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Readings review"),
    exportButton("readings", columns.slice(0, 6), () => rows)), form, bulk, list, more);
  await load();
}
