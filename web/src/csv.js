// CSV export of what a page shows: the rows and columns on screen, as a download.

function quote(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n\r]/.test(text) || /^[=+\-@\t]/.test(text)
    ? `"${(/^[=+\-@\t]/.test(text) && Number.isNaN(Number(text)) ? "'" : "") +
        text.replaceAll('"', '""')}"`
    : text;
}

/** Rows to CSV text: header names, then one line per row of getters' values. */
export function toCsv(columns, rows) {
  const lines = [columns.map((c) => quote(c.label)).join(",")];
  for (const row of rows) lines.push(columns.map((c) => quote(c.value(row))).join(","));
  return `${lines.join("\r\n")}\r\n`;
}

export function download(filename, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** An "Export CSV" button for what getRows() returns now. */
export function exportButton(name, columns, getRows) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "Export CSV";
  button.addEventListener("click", () => {
    const stamp = new Date().toISOString().slice(0, 19).replaceAll(":", "");
    download(`${name}-${stamp}.csv`, toCsv(columns, getRows()));
  });
  return button;
}
