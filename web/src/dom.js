// Small DOM helpers: h() builds elements, formatters turn API values into text.

/** Create an element: h("a", {href: "/x", onclick}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let fieldCounter = 0;

/** A labelled form field: label text, then the input element (given or made). */
export function field(label, input, hint) {
  if (!input.id) input.id = `f${++fieldCounter}`;
  return h("div", { class: "field" },
    h("label", { for: input.id }, label), input,
    hint ? h("small", { class: "muted" }, hint) : null);
}

/** A <select> with options [{value, label}] or plain strings. */
export function select(name, options, value) {
  const el = h("select", { name });
  for (const option of options) {
    const o = typeof option === "object" ? option : { value: option, label: option };
    el.append(h("option", { value: o.value, selected: String(o.value) === String(value ?? "") },
      o.label));
  }
  return el;
}

export function formatTime(ts) {
  if (!ts) return "never";
  const d = new Date(ts);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function ago(ts) {
  if (!ts) return "never";
  const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function formatValue(value, unit) {
  if (value === null || value === undefined) return "—";
  const n = Number(value);
  const text = Number.isInteger(n) ? String(n) : n.toFixed(Math.abs(n) >= 100 ? 1 : 2);
  return unit ? `${text} ${unit}` : text;
}

export function badge(text, kind = text) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

/** A table: columns [{label, cell(row) -> node|text, csv?(row) -> text}], rows. */
export function table(columns, rows, { caption, empty = "Nothing here yet." } = {}) {
  const t = h("table", {},
    caption ? h("caption", { class: "sr-only" }, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))));
  const body = h("tbody");
  if (!rows.length) {
    body.append(h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, empty)));
  }
  for (const row of rows) {
    body.append(h("tr", {}, columns.map((c) => h("td", { "data-label": c.label }, c.cell(row)))));
  }
  t.append(body);
  return h("div", { class: "table-wrap" }, t);
}
