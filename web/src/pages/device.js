// One device: sensors with live values, charts over a chosen range, commands, logs, its key.
import { api } from "../api.js";
import { RANGES, TimeChart, rangeSeconds } from "../chart.js";
import { exportButton } from "../csv.js";
import { ago, badge, field, fill, formatTime, formatValue, h, select, table } from "../dom.js";
import { subscribe } from "../live.js";
import { flash } from "../main.js";
import { loadSeries } from "../series.js";

export async function renderDevice(main, id) {
  const deviceId = Number(id);
  const device = await api(`/devices/${deviceId}`);
  const [sensorsPage, site] = await Promise.all([
    api("/sensors", { query: { device_id: deviceId, limit: 1000 } }),
    device.site_id ? api(`/sites/${device.site_id}`).catch(() => null) : null,
  ]);
  const sensors = sensorsPage.items.sort((a, b) => a.key.localeCompare(b.key));
  const stops = [];
  const charts = new Map();
  let series = { rows: [], mode: "raw" };

  const statusLine = h("p", { class: "muted", id: "device-status" });
  // Online and last seen are the device's heartbeats (API.md); the last reading is apart.
  const lastReading = () => sensors.reduce((t, s) => (s.last_ts && s.last_ts > t ? s.last_ts : t),
    "");
  function drawStatus() {
    fill(statusLine, badge(device.online ? "online" : "offline"), " ", device.status,
      " · last seen ", h("time", { datetime: device.last_seen || "" }, ago(device.last_seen)),
      " · last reading ", h("time", { datetime: lastReading() }, ago(lastReading() || null)),
      site ? ` · site ${site.name}` : "", device.location ? ` · ${device.location}` : "",
      device.firmware_version ? ` · firmware ${device.firmware_version}` : "");
  }
  drawStatus();

  const sensorCells = new Map();
  const sensorColumns = [
    { label: "Sensor", cell: (s) => s.name ? `${s.name} (${s.key})` : s.key, value: (s) => s.key },
    { label: "Type", cell: (s) => s.type, value: (s) => s.type },
    { label: "Latest", cell: (s) => {
      const cell = h("strong", { class: "value", "data-sensor": s.key },
        formatValue(s.last_value, s.unit));
      const when = h("small", { class: "muted" }, s.last_ts ? ` ${ago(s.last_ts)}` : "");
      sensorCells.set(s.key, { cell, when });
      return [cell, when];
    }, value: (s) => s.last_value ?? "" },
    { label: "Unit", cell: (s) => s.unit || "—", value: (s) => s.unit || "" },
    { label: "Status", cell: (s) => s.status, value: (s) => s.status },
  ];
  const sensorsBox = h("section", { "aria-labelledby": "sensors-h" },
    h("div", { class: "page-head" }, h("h2", { id: "sensors-h" }, "Sensors"),
      exportButton(`device-${deviceId}-sensors`, [...sensorColumns,
        { label: "Last time", value: (s) => s.last_ts || "" }], () => sensors)),
    table(sensorColumns, sensors, { caption: "Sensors",
      empty: "No sensors yet: the first reading for a key creates its sensor." }));

  // Charts over a range
  const range = select("range", RANGES, new URLSearchParams(location.search).get("range") || "-1h");
  const mode = h("span", { class: "muted", id: "chart-mode" });
  const chartsBox = h("div", { class: "charts" });
  const readingColumns = [{ label: "key", value: (r) => r.key }, { label: "ts", value: (r) => r.ts },
    { label: "value", value: (r) => r.value }];

  function chartFor(sensor, index) {
    if (charts.has(sensor.key)) return charts.get(sensor.key);
    const box = h("div", { class: "chart", role: "img",
                           "aria-label": `Chart of ${sensor.key}` });
    chartsBox.append(h("figure", { class: "card" }, h("figcaption", {}, sensor.name || sensor.key),
      box));
    const chart = new TimeChart(box, { label: sensor.key, unit: sensor.unit, color: index });
    charts.set(sensor.key, chart);
    return chart;
  }

  let loads = 0; // the range picked last wins, whichever answer arrives last
  async function loadCharts() {
    const load = ++loads;
    history.replaceState(null, "", `${location.pathname}?range=${range.value}`);
    fill(mode, "loading…");
    const loaded = await loadSeries({ device_id: deviceId, range: range.value });
    if (load !== loads) return; // another range was picked meanwhile
    series = loaded;
    sensors.forEach((s, i) => chartFor(s, i).set(series.byKey.get(s.key) || []));
    fill(mode, series.mode === "raw" ? "every reading, live"
      : `${series.fn} per ${series.interval} (aggregated)`);
  }
  range.addEventListener("change", () => loadCharts().catch((e) => flash(e.message, "error")));

  const chartSection = h("section", { "aria-labelledby": "charts-h" },
    h("div", { class: "page-head" }, h("h2", { id: "charts-h" }, "Readings"),
      h("div", { class: "inline" }, field("Time range", range), mode,
        exportButton(`device-${deviceId}-readings`, readingColumns, () => series.rows))),
    chartsBox);

  // Commands
  const commandsBox = h("div");
  let commands = [];
  const commandColumns = [
    { label: "Command", cell: (c) => c.name },
    { label: "Params", cell: (c) => h("code", {}, JSON.stringify(c.params || {})) },
    { label: "Status", cell: (c) => badge(c.status) },
    { label: "Sent", cell: (c) => formatTime(c.created_at) },
    { label: "Result", cell: (c) => (c.result === null || c.result === undefined ? "—"
      : h("code", {}, JSON.stringify(c.result))) },
    { label: "", cell: (c) => (["queued", "delivered"].includes(c.status)
      ? h("button", { type: "button", onclick: () => cancel(c) }, "Cancel") : "") },
  ];
  const drawCommands = () => fill(commandsBox, table(commandColumns, commands,
    { caption: "Commands", empty: "No commands sent yet." }));
  async function loadCommands() {
    commands = (await api(`/devices/${deviceId}/commands`, { query: { limit: 50 } })).items;
    commands.sort((a, b) => b.id - a.id);
    drawCommands();
  }
  async function cancel(command) {
    try {
      await api(`/devices/${deviceId}/commands/${command.id}`, { method: "DELETE" });
      await loadCommands();
    } catch (e) {
      flash(`Could not cancel: ${e.message}`, "error");
    }
  }
  const commandName = h("input", { name: "name", required: true, placeholder: "reboot",
                                   maxlength: 100 });
  const commandParams = h("textarea", { name: "params", rows: 2, placeholder: '{"seconds": 30}' });
  const commandTtl = h("input", { name: "ttl_seconds", type: "number", min: 1, inputmode: "numeric" });
  const commandError = h("p", { class: "error", role: "alert" });
  const commandForm = h("form", { class: "inline-form" }, commandError,
    field("Name", commandName), field("Params (JSON)", commandParams),
    field("Expires after (s)", commandTtl), h("button", { type: "submit" }, "Send command"));
  commandForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    commandError.textContent = "";
    let params;
    try {
      params = commandParams.value.trim() ? JSON.parse(commandParams.value) : undefined;
    } catch {
      commandError.textContent = "Params must be a JSON object, for example {\"seconds\": 30}.";
      return;
    }
    try {
      await api(`/devices/${deviceId}/commands`, { method: "POST", body: {
        name: commandName.value.trim(), params,
        ttl_seconds: commandTtl.value ? Number(commandTtl.value) : undefined } });
      commandForm.reset();
      await loadCommands();
    } catch (e) {
      commandError.textContent = `Not sent: ${e.message}`;
    }
  });

  // Logs
  const logsBox = h("div");
  async function loadLogs() {
    const logs = (await api(`/devices/${deviceId}/logs`, { query: { limit: 50 } })).items;
    fill(logsBox, table([
      { label: "Time", cell: (l) => formatTime(l.ts) },
      { label: "Level", cell: (l) => badge(l.level) },
      { label: "Message", cell: (l) => l.message },
    ], logs, { caption: "Logs", empty: "No log lines." }));
  }

  // Key rotation, confirmed in the page (a browser dialog can be dismissed unseen)
  const keyBox = h("div", { class: "key-box", "aria-live": "polite" });
  const rotate = h("button", { type: "button", onclick: () => {
    fill(keyBox, h("p", {}, "The current key stops working at once. Devices need the new one."),
      h("button", { type: "button", class: "danger", onclick: doRotate }, "Rotate now"), " ",
      h("button", { type: "button", onclick: () => fill(keyBox) }, "Keep the current key"));
  } }, "Rotate key");
  async function doRotate() {
    try {
      const answer = await api(`/devices/${deviceId}/rotate-key`, { method: "POST" });
      const key = h("output", { class: "secret", id: "new-key" }, answer.api_key);
      fill(keyBox, h("p", { class: "flash flash-ok" },
        "New key, shown this once (only its hash is kept). Copy it now:"), key, " ",
      h("button", { type: "button", onclick: () => navigator.clipboard?.writeText(answer.api_key)
      }, "Copy"), " ", h("button", { type: "button", onclick: () => fill(keyBox) }, "Done"));
    } catch (e) {
      fill(keyBox, h("p", { class: "error" }, `Not rotated: ${e.message}`));
    }
  }

  main.append(
    h("nav", { "aria-label": "Breadcrumb", class: "muted" },
      h("a", { href: "/devices", "data-link": true }, "Fleet"), " / ", device.name),
    h("div", { class: "page-head" }, h("h1", {}, device.name), rotate),
    statusLine, keyBox, sensorsBox, chartSection,
    h("section", { "aria-labelledby": "commands-h" }, h("h2", { id: "commands-h" }, "Commands"),
      commandForm, commandsBox),
    h("section", { "aria-labelledby": "logs-h" }, h("h2", { id: "logs-h" }, "Logs"), logsBox));

  await Promise.all([loadCharts(), loadCommands(), loadLogs().catch(() => fill(logsBox))]);

  stops.push(subscribe({ topic: "readings", device_id: deviceId }, (message) => {
    for (const item of message.items) {
      let sensor = sensors.find((s) => s.key === item.key);
      if (!sensor) {
        sensor = { key: item.key, type: item.key, unit: item.unit, status: "active" };
        sensors.push(sensor);
      }
      if (!sensor.last_ts || item.ts >= sensor.last_ts) {
        sensor.last_value = item.value;
        sensor.last_ts = item.ts;
        const cells = sensorCells.get(item.key);
        if (cells) {
          cells.cell.textContent = formatValue(item.value, sensor.unit);
          cells.when.textContent = ` ${ago(item.ts)}`;
          cells.cell.classList.remove("flash-new");
          void cells.cell.offsetWidth;
          cells.cell.classList.add("flash-new");
        }
      }
      if (series.mode === "raw" && item.valid !== false) {
        const t = Date.parse(item.ts) / 1000;
        chartFor(sensor, sensors.indexOf(sensor)).add(t, item.value,
          Date.now() / 1000 - rangeSeconds(range.value));
        series.rows.push({ device_id: deviceId, key: item.key, ts: item.ts, value: item.value });
      }
    }
    drawStatus();
  }));
  stops.push(subscribe({ topic: "device-status", device_id: deviceId }, (message) => {
    Object.assign(device, message.device);
    drawStatus();
  }));
  stops.push(subscribe({ topic: "commands", device_id: deviceId }, (message) => {
    const changed = message.command;
    const i = commands.findIndex((c) => c.id === changed.id);
    if (i >= 0) commands[i] = changed;
    else commands.unshift(changed);
    drawCommands();
  }));
  const tick = setInterval(drawStatus, 30000);
  return () => {
    stops.forEach((stop) => stop());
    clearInterval(tick);
    charts.forEach((chart) => chart.destroy());
  };
}
