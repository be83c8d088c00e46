"""Where a run stands: champion, frontier, cost, gate decisions, label quality, integrity monitors
(`monitors`: each monitor's latest reading, with its cycle, alert state, message and figures).
Backs `rsi status`.

`status(run_dir)` reads only the ledger, the `champion` file and the config recorded in the
ledger; it never writes, so it is safe to call while the loop is running (the ledger is in WAL
mode). Per-cycle values are keyed by the cycle as a string ("0", "1", ...), like the per-difficulty
accuracies, so the dict survives a JSON round trip unchanged.

Example:
    >>> st = status(Path("runs/demo"))                          # doctest: +SKIP
    >>> st["champion"], st["frontier"], st["cost"]["cpu_s"]     # doctest: +SKIP
    ('cycle-0003', 7, 5123.4)
    >>> rich.print(format_status(st))                          # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text

from rsi.config import resumed_config
from rsi.engine.manifest import checkpoint_sha256, verify_all
from rsi.errors import ConfigError
from rsi.ledger import Ledger
from rsi.run import inputs
from rsi.run.context import champions
from rsi.run.context import gates as effective_gates
from rsi.run.curriculum import frontier
from rsi.run.inputs import InputChanged
from rsi.run.rundir import CHAMPION, MODELS, open_ledger
from rsi.views.state import run_state


def accuracy(evals: list[dict], model: str, upto_cycle: int | None = None) -> dict[int, float]:
    """`model`'s accuracy per difficulty from its latest eval row at each difficulty (<= upto_cycle)."""
    acc: dict[int, float] = {}
    for r in sorted(evals, key=lambda r: r["cycle"]):
        if r["model"] == model and (upto_cycle is None or r["cycle"] <= upto_cycle):
            acc[r["difficulty"]] = r["accuracy"]
    return acc


def ladder_mean(acc: dict[int, float], ladder: range) -> float:
    """Mean held-out accuracy over the evaluation ladder, a difficulty not reached counting 0 (the
    ladder stops after `eval.stop_after_zeros` zeros): a measure of gain that moves with models
    that rarely cross the frontier's threshold, such as real models on hard tasks."""
    return sum(acc.get(d, 0.0) for d in ladder) / len(ladder) if len(ladder) else 0.0


def status(run_dir: Path) -> dict:
    """A JSON-serialisable summary of the run in `run_dir` (see the module docstring)."""
    run_dir = Path(run_dir)
    with open_ledger(run_dir) as ledger:
        info = ledger.run_info() or {}
        evals, gates, costs = ledger.evals(), effective_gates(ledger), ledger.costs()
        done = ledger.completed_stages()
        labels = {c: ledger.labels(c) for c in sorted({c for c, _ in done})}
        stops, warnings = ledger.events("stop"), ledger.events("warning")
        raised, cost = ledger.resume_overrides(), ledger.totals()
        readings = ledger.readings()
        budget, unusable = _budget(ledger, info.get("config", {}), raised)
        state = run_state(run_dir, ledger)
    config = info.get("config", {})
    curriculum = config.get("curriculum", {})
    threshold = curriculum.get("threshold")
    min_d = curriculum.get("min_difficulty") or min((r["difficulty"] for r in evals), default=1)

    def front(acc: dict[int, float]) -> int | None:
        return None if threshold is None else frontier(acc, threshold, min_d)

    by_cycle = champions(gates)
    champion_file = run_dir / CHAMPION
    champion = (champion_file.read_text().strip() if champion_file.is_file()
                else by_cycle[max(by_cycle)])
    champ_acc = accuracy(evals, champion)
    f_now, f_base = front(champ_acc), front(accuracy(evals, by_cycle[0], upto_cycle=0))
    cpu_h = cost["cpu_s"] / 3600
    velocity = None if f_now is None else ((f_now - f_base) / cpu_h if cpu_h > 0 else 0.0)
    e = config.get("eval", {})
    ladder = range(e.get("min_difficulty", 1), e.get("max_difficulty", max(champ_acc, default=0)) + 1)
    mean_by_cycle = {c: ladder_mean(accuracy(evals, m, upto_cycle=c), ladder) for c, m in by_cycle.items()}
    mean_now, mean_base = ladder_mean(champ_acc, ladder), mean_by_cycle[0]
    kept_fraction, label_accuracy = {}, {}
    for c, lbs in labels.items():
        if not lbs:
            continue
        kept = [lb for lb in lbs if lb.kept]
        audited = [lb.audit_correct for lb in kept if lb.audit_correct is not None]
        kept_fraction[str(c)] = len(kept) / len(lbs)
        label_accuracy[str(c)] = sum(audited) / len(audited) if audited else None
    cpu_upto = {c: sum(r["cpu_s"] for r in costs if r["cycle"] <= c) for c in by_cycle}
    champ_dir = run_dir / MODELS / champion
    last_stop = stops[-1] if stops else None
    stopped = None if last_stop is None or last_stop["detail"]["stages_done"] != len(done) else {
        "cycle": last_stop["cycle"], "before": last_stop["detail"]["before"], "reason": last_stop["detail"]["reason"],
        "at": last_stop["at"]}
    return {
        "name": info.get("name"),
        "run_dir": str(run_dir),
        "threshold": threshold,
        "state": state["state"],
        "state_why": state["why"],
        "cycles_completed": sum(1 for c, s in done if s == "gate" and c >= 1),
        "last_stage": list(done[-1]) if done else None,
        "champion": champion,
        "champion_weights_sha256": checkpoint_sha256(champ_dir) if champ_dir.is_dir() else None,
        "checkpoints": verify_all(run_dir / MODELS),
        "stopped": stopped,
        "budget": budget,
        "frontier": f_now,
        "frontier_at_cycle0": f_base,
        "labeled_max_difficulty": config.get("seed_data", {}).get("max_difficulty"),
        "eval": {str(d): a for d, a in sorted(champ_acc.items())},
        "cost": cost,
        "velocity": velocity,
        "mean_accuracy": mean_now,
        "mean_accuracy_at_cycle0": mean_base,
        "mean_accuracy_velocity": (mean_now - mean_base) / cpu_h if cpu_h > 0 else 0.0,
        "mean_accuracy_by_cycle": {str(c): v for c, v in mean_by_cycle.items()},
        "ladder": [ladder.start, ladder.stop - 1],
        "gates": [{k: g[k] for k in ("cycle", "champion", "candidate", "promote", "reason", "gain")}
                  for g in gates],
        "stalled": stalled(gates),
        "label_accuracy": label_accuracy,
        "kept_fraction": kept_fraction,
        "champions": {str(c): m for c, m in by_cycle.items()},
        "frontier_by_cycle": {str(c): front(accuracy(evals, m, upto_cycle=c)) for c, m in by_cycle.items()},
        "cpu_s_by_cycle": {str(c): v for c, v in cpu_upto.items()},
        "monitors": {r["monitor"]: {k: r[k] for k in ("cycle", "alert", "message", "value")} for r in readings},
        "notes": [n for e in warnings for n in e["detail"]["notes"]] + ([unusable] if unusable else []),
    }


STALL_CYCLES = 2  # rollbacks in a row, the latest cycles, that make a run read as stalled


def stalled(gates: list[dict]) -> dict | None:
    """{"cycles": n, "since": first cycle, "why": the latest reason} when the latest `STALL_CYCLES` or more
    cycles all kept their champion, else None."""
    trailing = []
    for g in reversed([g for g in gates if g["cycle"] >= 1]):
        if g["promote"]:
            break
        trailing.append(g)
    if len(trailing) < STALL_CYCLES:
        return None
    return {"cycles": len(trailing), "since": trailing[-1]["cycle"], "why": trailing[0]["reason"]}


def _budget(ledger: Ledger, config: dict, raised: list[str]) -> tuple[dict, str | None]:
    """The run's effective budget, and a note when a resume would refuse here: its config no longer
    validates, or a file it reads moved away or changed (`rsi.run.inputs`). Status still reads."""
    if not config:
        return {}, None
    try:
        cfg = resumed_config(config, raised)
        inputs.check(ledger, cfg)
    except ConfigError as e:
        return config.get("budget", {}), f"the run's config does not validate here, so `rsi resume` would refuse: {e}"
    except InputChanged as e:
        return cfg.budget.model_dump(), f"a file the run reads changed, so `rsi resume` would refuse: {e}"
    return cfg.budget.model_dump(), None


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


PER_ROW = 10  # difficulties per row of the accuracy table: 10 fit an 80-column terminal


def accuracy_table(acc: dict[str, float | None], title: str) -> Table:
    """Accuracy per difficulty, `PER_ROW` difficulties to a row pair (difficulty, accuracy), so
    every value shows in an 80-column terminal however long the ladder (rows `d` and `acc`)."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    for _ in range(min(PER_ROW, len(acc))):
        table.add_column(justify="right", min_width=4)
    items = list(acc.items())
    for i in range(0, len(items), PER_ROW):
        chunk = items[i:i + PER_ROW]
        table.add_row("d", *(f"[bold]{d}[/]" for d, _ in chunk), end_section=False)
        table.add_row("acc", *(_pct(a) for _, a in chunk), end_section=i + PER_ROW < len(items))
    return table


def format_status(st: dict) -> Group:
    """A rich renderable of `status()` for the terminal."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column(overflow="fold")  # a digest to compare with sha256sum is wrapped, never cut
    c = st["cost"]
    velocity = "—" if st["velocity"] is None else f"{st['velocity']:+.2f} difficulties / CPU-hour"
    for key, value in [
        ("run", f"{st['name']}  ({st['run_dir']})"),
        ("state", f"{st['state']}: {st['state_why']}" if st.get("state") else "—"),
        ("cycles completed", str(st["cycles_completed"])),
        ("last stage", "—" if st["last_stage"] is None else f"cycle {st['last_stage'][0]} {st['last_stage'][1]}"),
        *([("stalled", f"the last {st['stalled']['cycles']} cycles (from cycle {st['stalled']['since']}) kept the "
                       f"champion; the latest: {st['stalled']['why']}")] if st.get("stalled") else []),
        ("champion", str(st["champion"])),
        ("champion weights", f"sha256 {st['champion_weights_sha256']} (`sha256sum` of its model.safetensors)"
         if st.get("champion_weights_sha256") else "—"),
        ("checkpoints", checkpoints_line(st.get("checkpoints", {}))),
        ("frontier", f"{st['frontier']} (cycle 0: {st['frontier_at_cycle0']}, labelled up to "
                     f"{st['labeled_max_difficulty']}, threshold {st['threshold']})"),
        ("velocity", velocity),
        ("mean accuracy", f"{st['mean_accuracy']:.1%} over the ladder d{st['ladder'][0]}-d{st['ladder'][1]} (cycle 0: "
                          f"{st['mean_accuracy_at_cycle0']:.1%}), {100 * st['mean_accuracy_velocity']:+.1f} points "
                          "/ CPU-hour"),
        ("cost", f"{c['wall_s'] / 3600:.2f} h wall, {c['cpu_s'] / 3600:.2f} h CPU, "
                 f"{c['generated_tokens']:,} generated tokens, {c['train_sequences']:,} train "
                 f"sequences / {c['train_tokens']:,} tokens"),
    ]:
        head.add_row(key, Text(value))
    parts: list = [head]
    if st["eval"]:
        parts.append(accuracy_table(st["eval"], f"champion accuracy by difficulty ({st['champion']})"))
    if st["gates"] or st["kept_fraction"]:
        cyc = Table(title="cycles")
        for col in ("cycle", "kept", "label acc.", "gate", "reason"):
            cyc.add_column(col)
        gates = {str(g["cycle"]): g for g in st["gates"]}
        for k in sorted(set(gates) | set(st["kept_fraction"]), key=int):
            g = gates.get(k)
            outcome = "—" if g is None else ("[green]promote[/]" if g["promote"] else "[red]keep champion[/]")
            cyc.add_row(k, _pct(st["kept_fraction"].get(k)), _pct(st["label_accuracy"].get(k)),
                        outcome, Text("" if g is None else g["reason"]))
        parts.append(cyc)
    if st.get("monitors"):
        mon = Table(title="integrity monitors (latest reading)")
        for col in ("monitor", "cycle", "state", "reading"):
            mon.add_column(col)
        for name, r in st["monitors"].items():
            mon.add_row(name, str(r["cycle"]), "[red]ALERT[/]" if r["alert"] else "[green]ok[/]", Text(r["message"]))
        parts.append(mon)
    for note in st.get("notes", []):
        parts.append(Text(f"note: {note}", style="yellow"))
    for problem in corrupted(st):
        parts.append(Text(problem, style="bold red"))
    return Group(*parts)


def checkpoints_line(checks: dict[str, str | None]) -> str:
    if not checks:
        return "—"
    bad = sum(v is not None for v in checks.values())
    return f"{len(checks) - bad} of {len(checks)} match their manifests" + (f"; {bad} CORRUPTED" if bad else "")


def corrupted(st: dict) -> list[str]:
    """What is wrong with each checkpoint that does not match its manifest, and how to repair it."""
    bad = {name: why for name, why in st.get("checkpoints", {}).items() if why}
    if not bad:
        return []
    return [f"checkpoint {name}: {why}" for name, why in bad.items()] + [
        f"repair: `rsi repair {st['run_dir']}` retrains each corrupted checkpoint from the ledger with the seeds it "
        "was trained with, and checks the new weights against the digest the run recorded."]


def format_review(st: dict) -> Group:
    """A rich renderable of `rsi.stages.review.summary()`: what a reviewer decides on."""
    would = (f"the gate would promote it: {st['gate']}" if not st["vetoed"] else
               f"a monitor vetoed its promotion: {st['gate']}\napprove to overrule (it becomes the champion), or "
               "reject to confirm the rollback")
    head = Text(f"cycle {st['cycle']}: candidate {st['candidate']} against champion {st['champion']}\n{would}")
    acc = Table(title="held-out accuracy")
    for col in ("difficulty", "champion", "candidate"):
        acc.add_column(col, justify="right")
    for d, a in st["accuracy"].items():
        acc.add_row(d, _pct(a["champion"]), _pct(a["candidate"]))
    mon = Table(title="monitors this cycle")
    for col in ("monitor", "state", "reading"):
        mon.add_column(col)
    for r in st["monitors"]:
        mon.add_row(r["monitor"], "[red]ALERT[/]" if r["alert"] else "[green]ok[/]", Text(r["message"]))
    data = Table(title=f"new training data: {st['new_training_data']['kept']} kept samples, a sample of them")
    for col in ("source", "prompt", "answer"):
        data.add_column(col)
    for row in st["new_training_data"]["sample"]:
        data.add_row(row["source"], Text(row["prompt"]), Text(row["answer"]))
    prev = st.get("previous_review")
    cycle = f" --cycle {st['cycle']}" if st["kind"] == "overrule" else ""
    tail = Text(f"earlier ruling: {prev['ruling']} by {prev['by']} ({prev['why']})" if prev else
                f"record a ruling: rsi review RUN{cycle} --approve|--reject --why \"...\" [--by NAME]")
    return Group(head, acc, mon, data, tail)
