// Polls view.json and renders it; figures are redrawn only when their data changed.
"use strict";
const refreshMs = Number(document.body.dataset.refreshMs) || 2000;
let figureKey = null;

function text(id, value) { document.getElementById(id).textContent = value; }

function renderTables(tables) {
  const box = document.getElementById("tables");
  box.replaceChildren();
  for (const t of tables) {
    const table = document.createElement("table");
    table.id = t.id;
    table.createCaption().textContent = t.title;
    const head = table.createTHead().insertRow();
    for (const c of t.columns) {
      const th = document.createElement("th");
      th.textContent = c;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const row of t.rows) {
      const tr = body.insertRow();
      tr.dataset.row = String(row[0]);
      row.forEach((v, i) => {
        const td = tr.insertCell();
        td.dataset.key = t.keys[i];
        td.textContent = v;
      });
    }
    box.appendChild(table);
  }
}

function renderFigures(figs) {
  const box = document.getElementById("figures");
  const keep = new Set(figs.map(f => "fig-" + f.id));
  for (const el of Array.from(box.children)) {
    if (!keep.has(el.id)) { Plotly.purge(el); el.remove(); }
  }
  for (const f of figs) {
    let el = document.getElementById("fig-" + f.id);
    if (!el) {
      el = document.createElement("div");
      el.id = "fig-" + f.id;
      el.className = "figure" + (f.id.startsWith("map-") || f.id === "boards" ? " wide" : "");
      box.appendChild(el);
    }
    Plotly.react(el, f.figure.data, f.figure.layout, {displaylogo: false, responsive: true});
  }
}

function render(view) {
  const message = document.getElementById("message");
  if (view.error) {
    message.hidden = false;
    message.textContent = view.error;
    text("state", "not a run");
    document.getElementById("state").className = "state failed";
    return;
  }
  message.hidden = true;
  text("title", view.title);
  text("run", view.run);
  text("state", view.state);
  document.getElementById("state").className = "state " + view.state;
  text("detail", view.detail);
  const p = view.progress;
  document.getElementById("progress-fill").style.width =
    p.fraction === null ? "0" : (100 * p.fraction).toFixed(1) + "%";
  const lines = document.getElementById("progress-lines");
  lines.replaceChildren(...p.lines.map(l => {
    const li = document.createElement("li"); li.textContent = l; return li;
  }));
  renderTables(view.tables);
  if (view.figure_key !== figureKey) {
    renderFigures(view.figures);
    figureKey = view.figure_key;
  }
}

async function refresh() {
  try {
    const response = await fetch("view.json" + (figureKey ? "?have=" + encodeURIComponent(figureKey) : ""),
                                 {cache: "no-store"});
    render(await response.json());
    text("updated", "updated " + new Date().toLocaleTimeString());
  } catch (err) {
    text("updated", "hil watch is not answering (" + err + "); retrying");
  }
  setTimeout(refresh, refreshMs);
}
refresh();
