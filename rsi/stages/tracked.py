"""What a stage recorded, read back from the ledger and sent to the run's trackers (`rsi.track`).

`stage_done(tracking, ctx, cycle, stage)` runs after the stage's transaction committed, so a
tracker only ever sees figures the ledger holds. Per stage:

- `base`, `train`: the final SFT loss; GRPO's and the self-play proposer's step statistics on the
  `grpo_step` / `proposer_step` axes (the candidate's; friends' under their own keys);
- `label`: kept fraction and label accuracy;
- `evaluate`: the cycle's model's held-out accuracy per difficulty (`eval/acc/dN`);
- `gate` (and cycle 0's `evaluate`): the decision (`gate/promote`, gain, its lower bound, worst
  regression) with its reason as text, the champion's frontier and mean ladder accuracy, every
  monitor's reading of the cycle (`monitor/<name>/alert` and its numeric figures; its message as
  text), and the run's cost so far;
- every stage: its own cost (`cost/<stage>/wall_s`, `cpu_s`, `generated_tokens`, `train_tokens`).

`train_offset(cfg, cycle)` places a stage's SFT steps on one axis across cycles.
"""

from __future__ import annotations

from rsi.config import Config
from rsi.records import GrpoStep, ProposerStep
from rsi.run.context import Context, champion, champion_results, current_frontier, gates, model_name
from rsi.track import Tracking


def train_offset(cfg: Config, cycle: int) -> int:
    """Train steps taken before `cycle`'s train stage (the base's, then each cycle's)."""
    per_cycle = cfg.base.steps if cfg.loop.mode == "refresh" else cfg.train.steps
    return 0 if cycle == 0 else cfg.base.steps + (cycle - 1) * per_cycle


def _numbers(d: dict, prefix: str) -> dict[str, float]:
    """The numeric leaves of a reading's figures, as flat keys (lists of numbers by index)."""
    out: dict[str, float] = {}
    for k, v in d.items():
        key = f"{prefix}/{k}"
        if isinstance(v, dict):
            out |= _numbers(v, key)
        elif isinstance(v, list | tuple):
            out |= {f"{key}/{i}": x for i, x in enumerate(v) if isinstance(x, int | float)}
        elif isinstance(v, int | float):
            out[key] = v
    return out


def _metrics(ctx: Context, cycle: int, stage: str) -> dict:
    return next((m["metrics"] for m in ctx.ledger.metrics() if m["cycle"] == cycle and m["stage"] == stage), {})


def _steps(tracking: Tracking, ctx: Context, cycle: int) -> None:
    g, p = ctx.cfg.grpo, ctx.cfg.propose
    for raw in _metrics(ctx, cycle, "grpo").get("steps", []):
        s = GrpoStep.read(raw)
        pre = "grpo" if s.member == 0 else f"grpo_friend{s.member}"
        values = {"reward_mean": s.reward_mean, "reward_std": s.reward_std, "answer_tokens_mean": s.answer_tokens_mean,
                  "zero_variance_groups": s.zero_variance_groups, "loss": s.loss, "kl": s.kl,
                  "clip_fraction": s.clip_fraction} | {f"reward/{n}": r.mean for n, r in s.rewards.items()}
        tracking.log({f"{pre}/{k}": v for k, v in values.items()}, "grpo_step", (cycle - 1) * g.steps + s.step)
    for raw in _metrics(ctx, cycle, "proposer").get("steps", []):
        q = ProposerStep.read(raw)
        values = {"loss": q.loss, "clip_fraction": q.clip_fraction, "reward_mean": q.reward_mean,
                  "learnable": q.learnable}
        tracking.log({f"proposer/{k}": v for k, v in values.items()}, "proposer_step", (cycle - 1) * p.updates + q.step)


def _cycle_end(tracking: Tracking, ctx: Context, cycle: int) -> None:
    """The decision, the champion's standing, the monitors and the cost at the end of `cycle`."""
    for g in gates(ctx.ledger):
        if g["cycle"] == cycle:
            tracking.log({"gate/promote": g["promote"], "gate/gain": g["gain"], "gate/gain_lo": g["gain_lo"],
                          "gate/worst_regression": g["worst_regression"]}, "cycle", cycle)
            tracking.text("gate/reason", f"cycle {cycle}: {'promote' if g['promote'] else 'roll back'} "
                          f"{g['candidate']} ({g['reason']})", "cycle", cycle)
    champ = champion(ctx.ledger)
    acc = {d: r.accuracy for d, r in champion_results(ctx.ledger, champ).items()}
    e = ctx.cfg.eval
    ladder = range(e.min_difficulty, e.max_difficulty + 1)
    tracking.log({"frontier": current_frontier(ctx, champ),
                  "mean_accuracy": sum(acc.get(d, 0.0) for d in ladder) / len(ladder)}, "cycle", cycle)
    for r in ctx.ledger.readings():
        if r["cycle"] == cycle:
            name = r["monitor"]
            tracking.log({f"monitor/{name}/alert": r["alert"], **_numbers(r["value"], f"monitor/{name}")},
                         "cycle", cycle)
            if r["alert"]:
                tracking.text(f"monitor/{name}", r["message"], "cycle", cycle)
    totals = ctx.ledger.totals()
    tracking.log({f"cost/{k}": v for k, v in totals.items()}, "cycle", cycle)


def stage_done(tracking: Tracking, ctx: Context, cycle: int, stage: str) -> None:
    """Send what (cycle, stage) recorded to the trackers (see the module docstring)."""
    if not tracking:
        return
    cost = next((c for c in ctx.ledger.costs() if c["cycle"] == cycle and c["stage"] == stage), None)
    if cost is not None:
        tracking.log({f"cost/{stage}/{k}": cost[k] for k in ("wall_s", "cpu_s", "generated_tokens", "train_tokens")},
                     "cycle", cycle)
    if stage in ("base", "train"):
        m = _metrics(ctx, cycle, stage)
        tracking.log({"train/final_loss": m.get("final_loss")}, "cycle", cycle)
        _steps(tracking, ctx, cycle)
    elif stage == "label":
        m = _metrics(ctx, cycle, "label")
        tracking.log({"label/kept_fraction": m.get("kept_fraction"), "label/accuracy": m.get("label_accuracy"),
                      "label/kept": m.get("kept")}, "cycle", cycle)
    elif stage == "evaluate":
        rows = ctx.ledger.eval_results(cycle, model_name(cycle))
        tracking.log({f"eval/acc/d{r.difficulty}": r.accuracy for r in rows}, "cycle", cycle)
        if cycle == 0:
            _cycle_end(tracking, ctx, 0)
    elif stage == "gate":
        _cycle_end(tracking, ctx, cycle)
