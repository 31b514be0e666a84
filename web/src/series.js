// Readings for charts: raw readings for short ranges, /readings/aggregate for long ones.
import { api } from "./api.js";
import { intervalFor } from "./chart.js";

const MAX_PAGES = 5;

/**
 * Points by key for a device (or site) over a range: {mode, interval, byKey: Map(key ->
 * [[epoch s, value]]), rows} where rows are what an export shows.
 */
export async function loadSeries({ device_id, site_id, keys, range, fn = "avg", interval }) {
  const every = interval || intervalFor(range);
  const byKey = new Map();
  const rows = [];
  const put = (key, t, v) => {
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key).push([t, v]);
  };
  const filters = { device_id, site_id, keys: keys?.length ? keys.join(",") : undefined,
                    start: range };
  if (every) {
    const { items } = await api("/readings/aggregate", { query: { ...filters, interval: every,
                                                                  fn } });
    items.sort((a, b) => (a.bucket < b.bucket ? -1 : 1));
    for (const item of items) {
      put(item.key, Date.parse(item.bucket) / 1000, item[fn]);
      rows.push({ device_id: item.device_id, key: item.key, ts: item.bucket, value: item[fn] });
    }
    return { mode: "aggregate", interval: every, fn, byKey, rows };
  }
  let cursor;
  for (let page = 0; page < MAX_PAGES; page++) {
    const answer = await api("/readings", { query: { ...filters, order: "asc", limit: 10000,
                                                     cursor } });
    for (const r of answer.items) {
      put(r.key, Date.parse(r.ts) / 1000, r.value);
      rows.push({ device_id: r.device_id, key: r.key, ts: r.ts, value: r.value, unit: r.unit });
    }
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return { mode: "raw", interval: null, fn: null, byKey, rows };
}
