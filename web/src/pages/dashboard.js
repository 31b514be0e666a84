// The dashboard grid: the caller's saved layout (GET/PUT /dashboards/default), tiles added,
// moved and resized with the mouse or the keyboard, saved as they change.
import { GridStack } from "gridstack";
import "gridstack/dist/gridstack.min.css";
import { all, api, ApiError } from "../api.js";
import { RANGES, TimeChart, intervalFor, rangeSeconds } from "../chart.js";
import { exportButton } from "../csv.js";
import { field, fill, formatTime, formatValue, h, select, table } from "../dom.js";
import { subscribe } from "../live.js";
import { flash } from "../main.js";
import { loadSeries } from "../series.js";

const COLUMNS = 12;
const CHARTS = ["line", "area", "bar", "stat", "gauge", "table"];
const SAVE_DELAY_MS = 400;

function newId() {
  return `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

export async function renderDashboard(main) {
  const [devices, sites] = await Promise.all([all("/devices"), all("/sites")]);
  let dashboard;
  try {
    dashboard = await api("/dashboards/default");
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) throw e;
    dashboard = { name: "My dashboard", layout: { tiles: [] } };
  }
  const tiles = new Map(); // id -> {tile, el, body, chart?, rows, stop?}
  const saveState = h("span", { class: "muted", id: "save-state", role: "status" }, "");
  const gridEl = h("div", { class: "grid-stack" });
  const empty = h("p", { class: "muted" }, "No tiles yet: add one below.");
  let saveTimer = null;
  let saving = Promise.resolve();

  let grid = null; // made once the page is in the document (it measures its parent)
  const wide = () => grid.getColumn() === COLUMNS;

  function layoutNow() {
    const list = [];
    for (const [id, t] of tiles) {
      const n = t.el.gridstackNode || {};
      list.push({ ...t.tile, id, layout: { i: id, x: n.x ?? 0, y: n.y ?? 0, w: n.w ?? 4,
                                           h: n.h ?? 3 } });
    }
    list.sort((a, b) => a.layout.y - b.layout.y || a.layout.x - b.layout.x);
    return { tiles: list };
  }

  function scheduleSave() {
    empty.hidden = tiles.size > 0;
    if (!wide()) return; // a phone's one-column list is a view, not the saved layout
    fill(saveState, "Unsaved changes…");
    clearTimeout(saveTimer);
    saveTimer = setTimeout(() => {
      saving = saving.then(save);
    }, SAVE_DELAY_MS);
  }

  async function save() {
    fill(saveState, "Saving…");
    try {
      dashboard = await api("/dashboards/default", { method: "PUT",
        body: { name: dashboard.name || "My dashboard", layout: layoutNow() } });
      fill(saveState, "Saved");
    } catch (e) {
      fill(saveState, "");
      flash(`The layout was not saved: ${e.message}`, "error");
    }
  }

  function nudge(id, change) {
    const t = tiles.get(id);
    const n = t.el.gridstackNode;
    const next = change(n);
    next.w = Math.max(1, Math.min(COLUMNS, next.w ?? n.w));
    next.h = Math.max(1, next.h ?? n.h);
    next.x = Math.max(0, Math.min(COLUMNS - next.w, next.x ?? n.x));
    next.y = Math.max(0, next.y ?? n.y);
    grid.update(t.el, next);
    scheduleSave();
  }

  function addTile(tile) {
    const id = tile.id || newId();
    const l = tile.layout || {};
    const el = h("div", { class: "grid-stack-item", "gs-id": id, "data-tile": id });
    const body = h("div", { class: "tile-body" });
    const controls = [
      ["←", "Move left", (n) => ({ x: n.x - 1 })], ["→", "Move right", (n) => ({ x: n.x + 1 })],
      ["↑", "Move up", (n) => ({ y: n.y - 1 })], ["↓", "Move down", (n) => ({ y: n.y + 1 })],
      ["−", "Narrower", (n) => ({ w: n.w - 1 })], ["+", "Wider", (n) => ({ w: n.w + 1 })],
    ].map(([text, label, change]) => h("button", { type: "button", class: "icon",
      "aria-label": `${label}: ${tile.title}`, title: label, onclick: () => nudge(id, change) },
      text));
    const remove = h("button", { type: "button", class: "icon", title: "Remove",
      "aria-label": `Remove tile ${tile.title}`, onclick: () => {
        const t = tiles.get(id);
        t.stop?.();
        t.chart?.destroy();
        tiles.delete(id);
        grid.removeWidget(el);
        scheduleSave();
      } }, "×");
    el.append(h("div", { class: "grid-stack-item-content tile" },
      h("div", { class: "tile-head" }, h("h2", {}, tile.title),
        h("span", { class: "tile-tools" }, controls, remove)), body));
    gridEl.append(el);
    grid.makeWidget(el, { x: l.x, y: l.y, w: l.w || 4, h: l.h || 3, id,
                          autoPosition: l.x === undefined || l.y === undefined });
    const entry = { tile: { ...tile, id }, el, body, rows: [] };
    tiles.set(id, entry);
    drawTile(entry).catch((e) => fill(body, h("p", { class: "error" }, e.message)));
    return entry;
  }

  async function drawTile(entry) {
    const { tile, body } = entry;
    const key = tile.key || tile.sensorType;
    const range = tile.range || "-1h";
    const chart = tile.chart || "line";
    entry.stop?.();
    entry.chart?.destroy();
    entry.chart = null;
    fill(body, h("p", { class: "muted" }, "loading…"));
    const device = devices.find((d) => d.id === tile.device_id);
    const unitOf = (item) => item?.unit || "";
    if (chart === "stat" || chart === "gauge") {
      const { items } = tile.device_id
        ? await api("/readings/latest", { query: { device_id: tile.device_id, keys: key } })
        : await api("/readings/latest", { query: { site_id: tile.site_id, keys: key } });
      const latest = items.sort((a, b) => (a.ts < b.ts ? 1 : -1))[0];
      const value = h("strong", { class: "stat", "data-tile-value": tile.id },
        formatValue(latest?.value, unitOf(latest)));
      const when = h("small", { class: "muted" }, latest ? formatTime(latest.ts) : "no readings");
      fill(body, value, when, h("small", { class: "muted" }, device ? device.name : ""));
      entry.rows = latest ? [{ tile: tile.title, key, ts: latest.ts, value: latest.value }] : [];
      entry.stop = subscribe({ topic: "readings", device_id: tile.device_id,
                               site_id: tile.device_id ? undefined : tile.site_id, keys: [key] },
      (message) => {
        const item = message.items.filter((i) => i.key === key).at(-1);
        if (!item) return;
        value.textContent = formatValue(item.value, item.unit);
        when.textContent = formatTime(item.ts);
        entry.rows = [{ tile: tile.title, key, ts: item.ts, value: item.value }];
      });
      return;
    }
    let points;
    if (tile.device_id) {
      const series = await loadSeries({ device_id: tile.device_id, keys: [key], range,
                                        fn: tile.fn || "avg", interval: tile.interval });
      points = series.byKey.get(key) || [];
      entry.live = series.mode === "raw";
    } else {
      const trend = await api("/analytics/trends", { query: { key, site_id: tile.site_id,
        start: range, interval: tile.interval || intervalFor(range) || "1m", fn: tile.fn || "avg" } });
      points = trend.items.map((p) => [Date.parse(p.bucket) / 1000, p.value]);
      entry.live = false;
    }
    entry.rows = points.map(([t, v]) => ({ tile: tile.title, key,
                                           ts: new Date(t * 1000).toISOString(), value: v }));
    if (chart === "table") {
      const recent = entry.rows.slice(-20).reverse();
      fill(body, table([{ label: "Time", cell: (r) => formatTime(r.ts) },
        { label: key, cell: (r) => formatValue(r.value) }], recent, { caption: tile.title }));
    } else {
      const box = h("div", { class: "chart", dataset: { fill: "1" }, role: "img",
                             "aria-label": `Chart of ${key}` });
      fill(body, box);
      entry.chart = new TimeChart(box, { label: key, kind: chart, height: 150,
                                         color: tiles.size });
      entry.chart.set(points);
    }
    if (entry.live && tile.device_id) {
      entry.stop = subscribe({ topic: "readings", device_id: tile.device_id, keys: [key] },
        (message) => {
          for (const item of message.items) {
            if (item.key !== key || item.valid === false) continue;
            const t = Date.parse(item.ts) / 1000;
            entry.chart?.add(t, item.value, Date.now() / 1000 - rangeSeconds(range));
            entry.rows.push({ tile: tile.title, key, ts: item.ts, value: item.value });
          }
        });
    }
  }

  // The form that adds a tile
  const title = h("input", { name: "title", required: true, maxlength: 200 });
  const device = select("device_id", [{ value: "", label: "— choose —" },
    ...devices.map((d) => ({ value: d.id, label: d.name })),
    ...sites.map((s) => ({ value: `site:${s.id}`, label: `Site: ${s.name} (all devices)` }))]);
  const keys = h("datalist", { id: "tile-keys" });
  const key = h("input", { name: "key", required: true, list: "tile-keys",
                           placeholder: "temperature" });
  const chart = select("chart", CHARTS, "line");
  const range = select("range", RANGES, "-1h");
  device.addEventListener("change", async () => {
    fill(keys);
    if (!device.value || device.value.startsWith("site:")) return;
    const sensors = await api("/sensors", { query: { device_id: device.value, limit: 1000 } });
    fill(keys, sensors.items.map((s) => h("option", { value: s.key })));
    if (!key.value && sensors.items.length) key.value = sensors.items[0].key;
  });
  const addForm = h("form", { class: "inline-form card", "aria-labelledby": "add-tile-h" },
    h("h2", { id: "add-tile-h" }, "Add a tile"), field("Title", title),
    field("Device or site", device), field("Sensor key", key), keys, field("Chart", chart),
    field("Time range", range), h("button", { type: "submit" }, "Add tile"));
  addForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!device.value) {
      flash("Choose a device or a site for the tile.", "error");
      return;
    }
    const where = device.value.startsWith("site:")
      ? { site_id: Number(device.value.slice(5)) } : { device_id: Number(device.value) };
    addTile({ id: newId(), title: title.value.trim() || key.value, key: key.value.trim(),
              chart: chart.value, range: range.value, ...where,
              layout: { w: chart.value === "stat" || chart.value === "gauge" ? 3 : 6,
                        h: chart.value === "stat" || chart.value === "gauge" ? 2 : 3 } });
    addForm.reset();
    scheduleSave();
  });

  const exporter = exportButton("dashboard", [
    { label: "tile", value: (r) => r.tile }, { label: "key", value: (r) => r.key },
    { label: "ts", value: (r) => r.ts }, { label: "value", value: (r) => r.value }],
  () => [...tiles.values()].flatMap((t) => t.rows));
  main.append(h("div", { class: "page-head" }, h("h1", {}, dashboard.name || "Dashboard"),
    h("span", { class: "inline" }, saveState, exporter)),
  h("p", { class: "muted hint" }, "Drag a tile by its title, resize it from its corner, or use ",
    "its arrow buttons; the layout is saved as it changes."), empty, gridEl, addForm);

  grid = GridStack.init({
    column: COLUMNS, cellHeight: 90, margin: 6, float: false, animate: false,
    handle: ".tile-head", columnOpts: { breakpoints: [{ w: 640, c: 1 }], layout: "list" },
  }, gridEl);
  grid.batchUpdate();
  for (const tile of dashboard.layout?.tiles || []) addTile(tile);
  grid.batchUpdate(false);
  empty.hidden = tiles.size > 0;
  grid.on("change", () => scheduleSave());
  grid.on("resizestop", (_event, el) => {
    const t = tiles.get(el.getAttribute("gs-id"));
    t?.chart?.fit();
  });

  return () => {
    if (saveTimer) {
      clearTimeout(saveTimer);
      if (saveState.textContent === "Unsaved changes…") saving.then(save); // leaving: save now
    }
    for (const t of tiles.values()) {
      t.stop?.();
      t.chart?.destroy();
    }
    grid.destroy(false);
  };
}
