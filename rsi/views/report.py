"""The run report: one self-contained HTML page with plots. Backs `rsi report RUN`.

`write_report(run_dir)` reads the ledger (never writes it) and writes `run_dir/report.html`
atomically. The page holds a summary of `status()` (with links to the run in its experiment
trackers, `track`), then the figures, PNG plots embedded as base64 (no JavaScript, no external files, so it can be
mailed or opened offline):

  (a) accuracy by difficulty per cycle: the champion at the end of each cycle, and the candidate
      that cycle's gate judged, as heat maps made of HTML tables (each cell's percentage printed,
      its model, cycle and difficulty on hover);
  (b) the champion's frontier against cumulative CPU-seconds;
  (c) kept fraction and audited label accuracy per cycle;
  (d) for runs with GRPO, per step: mean reward of each component, the fraction of groups with
      zero reward variance, KL to the reference, clip fraction and answer length;
  (e) the gate decisions with their reasons, and the cost of every stage.

Plots use matplotlib's object API (`Figure`, rendered by Agg) without pyplot, so no global
backend is switched and no window can open.

Example:
    >>> write_report(Path("runs/demo"))                         # doctest: +SKIP
    PosixPath('runs/demo/report.html')
"""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

from rsi.records import GrpoStep
from rsi.run.context import grpo_steps
from rsi.run.rundir import atomic_write_text, open_ledger
from rsi.views.status import accuracy, checkpoints_line, corrupted, status

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;
overflow-wrap:break-word}table.heat{table-layout:fixed;width:100%;font-size:11px}
table.heat td,table.heat th{padding:2px 0;text-align:center;border:1px solid #fff}
table.heat tr>th:first-child{width:7em;text-align:left}caption{text-align:left;font-weight:bold;margin-bottom:4px}
th{background:#f3f3f3}.promote{color:#070}.reject{color:#a00}img{max-width:100%}.alert{color:#a00;font-weight:bold}"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


NUMBERS_UP_TO = 60  # difficulties a heat map prints its numbers for; wider ones show them on hover only


def _colour(v: float) -> tuple[str, str]:
    """(background, text colour) of accuracy `v` on matplotlib's viridis scale."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    return to_hex(colormaps["viridis"](v)), "#000" if v > 0.6 else "#fff"


def _heatmap(grid: list[list[tuple[float, str] | None]], rows: list[str], cols: list[int], title: str) -> str:
    """An HTML table, a cell per (row, difficulty): its accuracy as a percentage, coloured, and
    what it is on hover (the cell's `title`); no script, no image, readable at any ladder length."""
    numbers = len(cols) <= NUMBERS_UP_TO
    head = "".join(f"<th>{d}</th>" for d in cols)
    body = []
    for name, row in zip(rows, grid, strict=True):
        cells = []
        for d, cell in zip(cols, row, strict=True):
            if cell is None:
                cells.append("<td></td>")
                continue
            v, what = cell
            bg, fg = _colour(v)
            cells.append(f'<td style="background:{bg};color:{fg}" title="{escape(f"{what}, difficulty {d}: {v:.1%}")}">'
                         f"{round(100 * v) if numbers else ''}</td>")
        body.append(f"<tr><th>{escape(name)}</th>{''.join(cells)}</tr>")
    return (f'<table class="heat"><caption>{escape(title)} (accuracy %, hover a cell for its figures)</caption>'
            f"<tr><th>cycle</th>{head}</tr>{''.join(body)}</table>")


def _accuracy_plot(evals: list[dict], st: dict) -> str:
    champs = {int(c): m for c, m in st["champions"].items()}
    difficulties = sorted({r["difficulty"] for r in evals})
    cycles = sorted(champs)
    grid = []
    for c in cycles:
        acc = accuracy(evals, champs[c], upto_cycle=c)
        grid.append([(acc[d], f"cycle {c}: champion {champs[c]}") if d in acc else None for d in difficulties])
    out = _heatmap(grid, [f"{c} ({champs[c]})" for c in cycles], difficulties, "champion at the end of each cycle")
    if st["gates"]:
        cand = []
        for g in st["gates"]:
            acc = {r["difficulty"]: r["accuracy"] for r in evals
                   if r["model"] == g["candidate"] and r["cycle"] == g["cycle"]}
            what = f"cycle {g['cycle']}: candidate {g['candidate']} ({'promoted' if g['promote'] else 'rolled back'})"
            cand.append([(acc[d], what) if d in acc else None for d in difficulties])
        rows = [f"{g['cycle']} {'✓' if g['promote'] else '✗'}" for g in st["gates"]]
        out += _heatmap(cand, rows, difficulties, "candidate judged by each gate (✓ promoted)")
    return out


def _frontier_plot(st: dict) -> str:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    cycles = sorted(int(c) for c in st["frontier_by_cycle"])
    pts = [(st["cpu_s_by_cycle"][str(c)], st["frontier_by_cycle"][str(c)], c) for c in cycles]
    pts = [p for p in pts if p[1] is not None]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    if pts:
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", marker="o")
        for x, y, c in pts:
            ax.annotate(f"c{c}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if st["labeled_max_difficulty"] is not None:
        ax.axhline(st["labeled_max_difficulty"], color="grey", ls="--", label="labelled up to")
        ax.legend(loc="lower right")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("cumulative CPU-seconds")
    ax.set_ylabel("champion frontier (difficulty)")
    ax.set_title(f"frontier over compute (threshold {st['threshold']})")
    ax.grid(alpha=0.3)
    return _png(fig)


def _labels_plot(st: dict) -> str:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for key, name in (("kept_fraction", "kept fraction"), ("label_accuracy", "label accuracy (audit)")):
        pts = sorted((int(c), v) for c, v in st[key].items() if v is not None)
        ax.plot([c for c, _ in pts], [v for _, v in pts], marker="o", label=name)
    ax.set_ylim(-0.05, 1.05)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("cycle")
    ax.set_ylabel("fraction")
    ax.set_title("labels: kept fraction and accuracy of kept labels")
    ax.legend()
    ax.grid(alpha=0.3)
    return _png(fig)


def _grpo_plot(steps: list[tuple[int, GrpoStep]]) -> str:
    """The candidates' GRPO steps of every cycle, (cycle, step) in order."""
    from matplotlib.figure import Figure

    x = list(range(1, len(steps) + 1))
    fig = Figure(figsize=(12, 4))
    left, mid, right = fig.subplots(1, 3)
    for name in sorted({n for _, s in steps for n in s.rewards}):
        left.plot(x, [r.mean if (r := s.rewards.get(name)) else None for _, s in steps], label=name)
    left.plot(x, [s.zero_variance_groups for _, s in steps], ls=":", color="grey", label="zero-variance groups")
    left.set_title("mean reward per component")
    mid.plot(x, [s.kl for _, s in steps], label="KL to reference")
    mid.plot(x, [s.clip_fraction for _, s in steps], label="clip fraction")
    mid.set_title("KL and clipping")
    right.plot(x, [s.answer_tokens_mean for _, s in steps])
    right.set_title("answer length (tokens)")
    starts = [i + 1 for i, (c, _) in enumerate(steps) if i == 0 or c != steps[i - 1][0]]
    for ax in (left, mid, right):
        for s in starts[1:]:
            ax.axvline(s, color="grey", lw=0.5)
        ax.set_xlabel("GRPO step (grey lines: new cycle)")
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    mid.legend(fontsize=8)
    return _png(fig)


def _table(header: list[str], rows: list[list[str]], row_class: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_class[i]}"' if row_class else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _tracked(events: list[dict]) -> str:
    """Where the run is tracked (`rsi.track`): each tracker's link, a hyperlink when it is a URL."""
    links = {name: made["link"] for e in events for name, made in e["detail"].items()}
    parts = []
    for name, link in sorted(links.items()):
        url = link.split(" ")[0]
        shown = f'<a href="{escape(url)}">{escape(link)}</a>' if url.startswith(("http://", "https://", "file:")) \
            else escape(link)
        parts.append(f"{escape(name)}: {shown}")
    return "<p>tracked in " + "; ".join(parts) + "</p>" if parts else ""


def _summary(st: dict) -> str:
    c = st["cost"]
    vel = "—" if st["velocity"] is None else f"{st['velocity']:+.2f} difficulties per CPU-hour"
    rows = [
        ["cycles completed", st["cycles_completed"]],
        ["last completed stage", "—" if not st["last_stage"] else f"cycle {st['last_stage'][0]} {st['last_stage'][1]}"],
        ["champion", st["champion"]],
        ["champion weights sha256", st["champion_weights_sha256"] or "—"],
        ["checkpoints", checkpoints_line(st["checkpoints"])],
        ["frontier", f"{st['frontier']} (cycle 0: {st['frontier_at_cycle0']}; labelled up to "
                     f"{st['labeled_max_difficulty']}; threshold {st['threshold']})"],
        ["velocity", vel],
        ["mean held-out accuracy", f"{st['mean_accuracy']:.1%} over difficulties {st['ladder'][0]}-{st['ladder'][1]} "
                                   f"(cycle 0: {st['mean_accuracy_at_cycle0']:.1%}; "
                                   f"{100 * st['mean_accuracy_velocity']:+.1f} points per CPU-hour)"],
        ["wall time", f"{c['wall_s'] / 3600:.2f} h"],
        ["CPU time", f"{c['cpu_s'] / 3600:.2f} h"],
        ["generated tokens", f"{c['generated_tokens']:,}"],
        ["train sequences / tokens", f"{c['train_sequences']:,} / {c['train_tokens']:,}"],
        ["champion accuracy", ", ".join(f"d{d}: {a:.0%}" for d, a in st["eval"].items()) or "—"],
    ]
    return _table(["", ""], [[k, str(v)] for k, v in rows])


def write_report(run_dir: Path, out: Path | None = None, st: dict | None = None) -> Path:
    """Write `out` (default `run_dir/report.html`, mode 0600) and return its path; `st` is the
    run's `status()` if the caller has it already."""
    run_dir = Path(run_dir)
    st = st or status(run_dir)
    with open_ledger(run_dir) as ledger:
        evals, costs, metrics = ledger.evals(), ledger.costs(), ledger.metrics()
        readings, tracking = ledger.readings(), ledger.events("tracking")
    steps = [(c, s) for c, s in grpo_steps(metrics) if s.member == 0]  # the candidates' (not the friends')
    monitors = _table(["cycle", "monitor", "state", "reading"],
                      [[r["cycle"], r["monitor"], "ALERT" if r["alert"] else "ok", r["message"]] for r in readings],
                      ["reject" if r["alert"] else "" for r in readings])
    gates = _table(
        ["cycle", "champion", "candidate", "decision", "gain", "reason"],
        [[g["cycle"], g["champion"], g["candidate"], "promote" if g["promote"] else "keep champion",
          f"{g['gain']:+.1%}", g["reason"]] for g in st["gates"]],
        ["promote" if g["promote"] else "reject" for g in st["gates"]])
    stages = _table(
        ["cycle", "stage", "finished", "wall s", "CPU s", "generated tokens", "train seqs", "train tokens"],
        [[r["cycle"], r["stage"], r["finished_at"], f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}",
          r["generated_tokens"], r["train_sequences"], r["train_tokens"]] for r in costs])
    title = f"rsi run {st['name'] or run_dir.name}"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{escape(title)}</title><style>{_CSS}</style></head>
<body><h1>{escape(title)}</h1>
{"".join(f'<p class="alert">{escape(line)}</p>' for line in corrupted(st))}
{_summary(st)}
{_tracked(tracking)}
<h2>Accuracy by difficulty</h2>
{_accuracy_plot(evals, st) if evals else "<p>No evaluations yet.</p>"}
<h2>Frontier over compute</h2>
{_frontier_plot(st)}
<h2>Labels</h2>
{_labels_plot(st)}
{"<h2>GRPO</h2>" + _grpo_plot(steps) if steps else ""}
<h2>Integrity monitors</h2>
{monitors if readings else "<p>No monitor readings yet.</p>"}
<h2>Gate decisions</h2>
{gates if st["gates"] else "<p>No gate decisions yet.</p>"}
<h2>Cost by stage</h2>
{stages}
</body></html>
"""
    out = Path(out) if out is not None else run_dir / "report.html"
    atomic_write_text(out, page)
    return out
