"""Where a recipe search stands, and its report. Backs `rsi status SEARCH` and `rsi report SEARCH`.

Read from the search ledger (`rsi.search.record`) and the root and calibration runs, never written:

- the population's frontier against compute: after each reported cycle, the best frontier any
  trial holds against the CPU hours the search has spent (root, calibration, every trial's own cycles);
- the best recipe found (highest frontier with the accuracy just above it; less compute breaks a tie),
  with its lineage: whose champion its trial copied, cycle by cycle, back to the root. The config's own
  recipe (the calibration run) is a contender: a search whose trials never beat it says so;
- the recipe changes the gates rejected: cycles whose gate rolled back, with the recipe they ran.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text

from rsi.run.rundir import atomic_write_text
from rsi.search.record import SearchLedger
from rsi.search.space import value_at
from rsi.search.trial import CALIBRATION, ROOT, figures, search_cpu_s


def best_of(rows: list[dict], own: dict | None) -> dict | None:
    """The best of the trials' reported cycles and `own` (the config's own recipe, as the calibration
    run ran it): highest frontier with the accuracy just above it, then the least compute. `own` wins a
    tie, so a trial is best only when it beat the hand-set recipe."""
    contenders = ([own] if own else []) + rows
    return max(contenders, key=lambda r: (r["frontier"] + r["acc_above"], -r["cpu_s"]), default=None)


def own_recipe(search_dir: Path, info: dict | None, calib: dict | None) -> dict | None:
    """The calibration run as a contender: the config's values for the space's keys, its figures."""
    if not info or not calib:
        return None
    return {"trial": CALIBRATION, "cycle": calib["cycle"], "frontier": calib["frontier"],
            "acc_above": calib["acc_above"], "cpu_s": calib["cpu_s"], "run_dir": str(Path(search_dir) / CALIBRATION),
            "recipe": {k: value_at(info["config"], k) for k in info["space"]}}


def search_status(search_dir: Path) -> dict:
    search_dir = Path(search_dir)
    with SearchLedger(search_dir, readonly=True) as book:
        info, rows, lineage, events = book.search(), book.iterations(), book.lineage(), book.events()
    root = figures(search_dir / ROOT) if (search_dir / ROOT / "ledger.sqlite").is_file() else None
    calib = figures(search_dir / CALIBRATION) if (search_dir / CALIBRATION / "ledger.sqlite").is_file() else None
    spent = calib["cpu_s"] if calib else (root["cpu_s"] if root else 0.0)
    curve, best_f = [], None
    for r in rows:
        spent += r["cycle_cpu_s"]
        best_f = max(best_f or r["frontier"], r["frontier"])
        curve.append({"cpu_h": round(spent / 3600, 4), "frontier": best_f, "trial": r["trial"], "cycle": r["cycle"]})
    best = best_of(rows, own_recipe(search_dir, info, calib))
    ended = [e for e in events if e["kind"] in ("start", "stopped", "finished")]  # the last: how the last session ended
    return {
        "dir": str(search_dir), "scheduler": info["scheduler"] if info else None,
        "population": info["population"] if info else None, "space": info["space"] if info else None,
        "budget_cpu_hours": next((e["detail"].get("budget_cpu_hours", info["budget_cpu_hours"]) for e in reversed(ended)
                                  if e["kind"] == "start"), None),  # the budget it was last started or resumed with
        "base_frontier": root["frontier"] if root else None,
        "calibration": None if calib is None else {k: calib[k] for k in ("frontier", "acc_above", "cpu_s")},
        "trials": len({r["trial"] for r in rows}), "cycles_reported": len(rows),
        "cpu_hours": search_cpu_s(search_dir) / 3600, "frontier_against_compute": curve,
        "best": None if best is None else {k: best[k] for k in ("trial", "cycle", "frontier", "acc_above", "recipe",
                                                                 "cpu_s", "run_dir")},
        "found_better": best is not None and best["trial"] != CALIBRATION,
        "lineage": [] if best is None else lineage_of(best["trial"], best["cycle"], lineage),
        "rejected": [{k: r[k] for k in ("trial", "cycle", "recipe", "frontier")} for r in rows if not r["promoted"]],
        "finished": any(e["kind"] == "finished" for e in events),
        "stopped": ended[-1]["detail"]["why"] if ended and ended[-1]["kind"] == "stopped" else None,
    }


def lineage_of(trial: str, cycle: int, lineage: list[dict]) -> list[dict]:
    """Whose champion `trial` copied before `cycle`, then whose that trial copied, back to the root."""
    chain, seen = [], set()
    while trial != ROOT and (trial, cycle) not in seen:
        seen.add((trial, cycle))
        copies = [x for x in lineage if x["trial"] == trial and x["cycle"] < cycle]
        if not copies:
            break
        x = copies[-1]
        chain.append({"trial": trial, "copied_from": x["from_trial"], "at_cycle": x["cycle"], "champion": x["champion"],
                      "weights_sha256": x["weights_sha256"]})
        trial, cycle = x["from_trial"], x["cycle"] + 1
    return chain


def format_search_status(st: dict) -> Group:
    head = Text(f"search {st['dir']}: {st['scheduler']}, population {st['population']}, {st['trials']} trials, "
                f"{st['cycles_reported']} cycles reported, {st['cpu_hours']:.3f} CPU h"
                + (" (finished)" if st["finished"] else f" (stopped: {st['stopped']})" if st["stopped"] else ""))
    parts = [head, Text(f"base model's frontier {st['base_frontier']}; the config's own recipe after one cycle: "
                        f"{(st['calibration'] or {}).get('frontier')}")]
    if st["best"] and not st["found_better"]:
        b = st["best"]
        parts.append(Text(f"best: the config's own recipe (frontier {b['frontier']}, +{b['acc_above']:.0%} above, "
                          f"in its calibration cycle): no trial beat it. Recipe {b['recipe']}"))
    elif st["best"]:
        b = st["best"]
        parts.append(Text(f"best: frontier {b['frontier']} (+{b['acc_above']:.0%} above) by trial {b['trial']} at "
                          f"cycle {b['cycle']}, recipe {b['recipe']}"))
        parts += [Text(f"  {x['trial']} copied {x['copied_from']}'s {x['champion']} after cycle {x['at_cycle']}")
                  for x in st["lineage"]]
    if st["rejected"]:
        t = Table(title="recipe changes the gates rejected")
        for col in ("trial", "cycle", "recipe"):
            t.add_column(col)
        for r in st["rejected"][-20:]:
            t.add_row(r["trial"], str(r["cycle"]), str(r["recipe"]))
        parts.append(t)
    return Group(*parts)


def write_search_report(search_dir: Path, out: Path | None = None) -> Path:
    """SEARCH/report.html: the population's frontier against compute, the best recipe and its lineage,
    every trial's cycles, and the rejected recipe changes."""
    from matplotlib.figure import Figure

    from rsi.views.report import _CSS, _png, _table

    st = search_status(search_dir)
    fig = Figure(figsize=(7, 3.2))
    ax = fig.add_subplot()
    curve = st["frontier_against_compute"]
    ax.step([p["cpu_h"] for p in curve], [p["frontier"] for p in curve], where="post")
    ax.set_xlabel("CPU hours spent by the search")
    ax.set_ylabel("best frontier")
    with SearchLedger(Path(search_dir), readonly=True) as book:
        rows = book.iterations()
    best = st["best"] or {}
    html = [f"<!doctype html><html><head><meta charset='utf-8'><title>search {escape(st['dir'])}</title>"
            f"<style>{_CSS}</style></head><body><h1>Recipe search</h1>",
            f"<p>{escape(st['scheduler'] or '')}, population {st['population']}, {st['trials']} trials, "
            f"{st['cpu_hours']:.3f} CPU h; base frontier {st['base_frontier']}; best frontier {best.get('frontier')} "
            f"with recipe <code>{escape(str(best.get('recipe')))}</code></p>", _png(fig),
            "<h2>Lineage of the best</h2>",
            _table(["trial", "copied from", "after cycle", "champion"],
                   [[x["trial"], x["copied_from"], x["at_cycle"], x["champion"]] for x in st["lineage"]]),
            "<h2>Every trial's cycles</h2>",
            _table(["trial", "cycle", "recipe", "frontier", "acc above", "gate", "CPU s (run)"],
                   [[r["trial"], r["cycle"], r["recipe"], r["frontier"], f"{r['acc_above']:.0%}",
                     "promote" if r["promoted"] else "roll back", f"{r['cpu_s']:.0f}"]
                    for r in rows]),
            "</body></html>"]
    out = Path(out) if out else Path(search_dir) / "report.html"
    atomic_write_text(out, "\n".join(html))
    return out
