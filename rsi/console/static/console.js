// The console's one script: redraws the run page and the runs list from their JSON every two seconds.
"use strict";
const EVERY_MS = 2000;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}
const pct = (x) => (x == null ? "—" : Math.round(100 * x) + "%");

function heatColour(a) {  // white at 0 to green at 1
  const g = Math.round(255 - 90 * a), r = Math.round(255 - 200 * a), b = Math.round(255 - 180 * a);
  return `rgb(${r},${g},${b})`;
}

function frontierPlot(points) {
  const W = 560, H = 220, P = 36, NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("id", "frontier-svg");
  if (!points.length) return svg;
  const xs = points.map((p) => p.cpu_h), ys = points.map((p) => p.frontier);
  const xMax = Math.max(...xs, 1e-6), yMax = Math.max(...ys, 1);
  const x = (v) => P + (W - 2 * P) * v / xMax, y = (v) => H - P - (H - 2 * P) * v / yMax;
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    svg.append(e); return e;
  };
  add("line", {x1: P, y1: H - P, x2: W - P, y2: H - P, stroke: "#888"});
  add("line", {x1: P, y1: P, x2: P, y2: H - P, stroke: "#888"});
  add("text", {x: W / 2, y: H - 6, "text-anchor": "middle", "font-size": 11}, "CPU hours");
  add("text", {x: 4, y: P - 8, "font-size": 11}, "frontier");
  add("text", {x: W - P, y: H - P + 14, "text-anchor": "end", "font-size": 10}, xMax.toFixed(3));
  add("text", {x: P - 4, y: y(yMax) + 4, "text-anchor": "end", "font-size": 10}, yMax);
  add("polyline", {points: points.map((p) => `${x(p.cpu_h)},${y(p.frontier)}`).join(" "), fill: "none",
                   stroke: "#1f6feb", "stroke-width": 2});
  for (const p of points) {
    add("circle", {cx: x(p.cpu_h), cy: y(p.frontier), r: 3.5, fill: "#1f6feb", class: "point"})
      .append(Object.assign(document.createElementNS(NS, "title"),
                            {textContent: `cycle ${p.cycle}: frontier ${p.frontier}, ${p.cpu_h} CPU h`}));
  }
  return svg;
}

function heatmap(grid) {
  const cycles = Object.keys(grid).map(Number).sort((a, b) => a - b);
  const ds = [...new Set(cycles.flatMap((c) => Object.keys(grid[c]).map(Number)))].sort((a, b) => a - b);
  const head = el("tr", {}, el("th", {}, "cycle \\ d"), ...ds.map((d) => el("th", {}, d)));
  const rows = cycles.map((c) => el("tr", {}, el("th", {}, c), ...ds.map((d) => {
    const a = grid[c][d];
    return el("td", a == null ? {} : {style: `background:${heatColour(a)}`, title: `cycle ${c}, d${d}: ${pct(a)}`},
              a == null ? "" : pct(a));
  })));
  return el("table", {class: "heat", id: "heat"}, el("thead", {}, head), el("tbody", {}, ...rows));
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function drawRun(run) {
  const state = document.getElementById("state");
  state.textContent = run.state; state.className = "state " + run.state;
  const where = document.getElementById("where");
  const p = run.progress;
  if (run.state === "running" && p) where.textContent = `cycle ${p.cycle}, stage ${p.stage} (since ${p.started})`;
  else if (run.state === "waiting") where.textContent = `waiting for review: ${run.waiting.candidate} (cycle ${run.waiting.cycle})`;
  else if (run.state === "stopped") where.textContent = `stopped before ${run.stop.before} of cycle ${run.stop.cycle}: ${run.stop.reason}`;
  else if (run.state === "incomplete") where.textContent = `incomplete: ${run.state_why}`;
  else where.textContent = run.last_stage ? `last stage: ${run.last_stage.join(" ")}` : "";
  const bar = document.getElementById("progress");
  if (run.state === "running" && p && p.bar) {
    bar.hidden = false;
    document.getElementById("progress-fill").style.width = (100 * p.bar.done / Math.max(1, p.bar.total)) + "%";
    document.getElementById("progress-text").textContent = `${p.bar.what} ${p.bar.done}/${p.bar.total} ${p.bar.info || ""}`;
  } else bar.hidden = true;
  document.getElementById("headline").textContent =
    `frontier ${run.frontier} · champion ${run.champion} · ${run.cycles_completed} cycles done · ` +
    `${run.cost.cpu_h.toFixed(3)} CPU h · labels given up to difficulty ${run.labelled_max_difficulty}`;
  document.getElementById("frontier-plot").replaceChildren(frontierPlot(run.frontier_by_cycle));
  document.getElementById("heatmap").replaceChildren(heatmap(run.accuracy));
  fill(document.querySelector("#gates tbody"), run.gates.map((g) => el("tr", {},
    el("td", {}, g.cycle), el("td", {}, g.candidate), el("td", {}, g.promote ? "promote" : "roll back"),
    el("td", {}, (100 * g.gain).toFixed(1) + "%"), el("td", {}, g.reason))));
  fill(document.querySelector("#monitors tbody"), run.monitors.slice().reverse().map((m) => el("tr",
    {class: m.alert ? "alert" : ""}, el("td", {}, m.cycle), el("td", {}, m.monitor), el("td", {}, m.alert ? "ALERT" : ""),
    el("td", {}, m.message))));
}

function drawRuns(runs) {
  fill(document.querySelector("#runs tbody"), runs.map((r) => el("tr", {"data-run": r.dir},
    el("td", {}, el("a", {href: "/runs/" + encodeURIComponent(r.dir)}, r.dir)),
    el("td", {class: "state " + r.state}, r.state),
    ...(r.error ? [el("td", {colspan: 7, class: "error"}, r.error)] : [
      el("td", {}, r.task), el("td", {}, r.frontier), el("td", {}, r.champion), el("td", {}, r.cycles_completed),
      el("td", {}, r.last_stage ? r.last_stage.join(" ") : ""), el("td", {}, r.cost.cpu_h.toFixed(3)),
      el("td", {}, r.alerts.length)]))));
}

function follow(url, draw) {
  const tick = async () => {
    try {
      const res = await fetch(url, {headers: {accept: "application/json"}, credentials: "same-origin"});
      if (res.ok) draw(await res.json());
    } catch (e) { /* the console went away; try again */ }
    setTimeout(tick, EVERY_MS);
  };
  setTimeout(tick, EVERY_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live) {
    drawRun(JSON.parse(document.getElementById("initial").textContent));
    follow(live.dataset.live, drawRun);
  }
  const runs = document.getElementById("runs");
  if (runs && runs.dataset.live) follow(runs.dataset.live, drawRuns);
});
