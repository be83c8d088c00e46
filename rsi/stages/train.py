"""The stages that train: `base` (cycle 0) and `train` (every later cycle), one member at a time.

A member is the candidate (k = 0) or a friend (`label.friends`), each from its own seed. Training
a member is a function of the ledger and the checkpoint it starts from, so `rsi repair` retrains
one corrupted checkpoint with the very call the stage made (`train_member`, `base_member`), and
checks the result against the weights digest the stage recorded in its metrics (`checkpoints`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rich.markup import escape

from rsi.engine.backend import initial_model, merged, with_lora
from rsi.engine.checkpoint import load_checkpoint, save_checkpoint
from rsi.engine.manifest import recorded_sha256
from rsi.learn.data import mixture, seed_stream
from rsi.learn.grpo import group_normalised, grpo_train, recorded_update
from rsi.learn.resumable import Resumable, clear, partial_dir
from rsi.learn.rewards import load_reward
from rsi.progress import bar
from rsi.records import GrpoStep, ProposerStep, TrainFacts
from rsi.run.context import Context, champion_cycle, member_seed, model_name, timed
from rsi.stages.tracked import train_offset
from rsi.tasks.selfplay import proposal_rewards, solve_rates


@dataclass
class Trained:
    """What training one member did: its checkpoint's weights digest and figures for the ledger."""

    name: str
    weights_sha256: str
    loss: float | None = None
    sequences: int = 0
    tokens: int = 0
    generated_tokens: int = 0
    rl_logs: list[GrpoStep] = field(default_factory=list)
    proposer_logs: list[ProposerStep] = field(default_factory=list)


def fresh_model(ctx: Context, seed: int):
    """A run's starting model: a new tiny model from `seed`, or the pretrained `model.path`."""
    return initial_model(ctx.cfg.model, ctx.task.alphabet, seed, ctx.cfg.engine)


def fresh_origin(ctx: Context) -> str:
    """What `fresh_model` starts from, for checkpoint manifests."""
    return "scratch" if ctx.cfg.model.kind == "tiny" else str(ctx.cfg.model.path)


def _train_model(ctx: Context, model, tokenizer, draw, tcfg, seed, label, resumable: Resumable, cycle: int,
                 member: int):
    """Train `model` in place (through a LoRA adapter when `model.lora` is set); return its stats.
    Its losses go to the run's trackers (`rsi.track`) on the run's one train-step axis."""
    trainable = with_lora(model, ctx.cfg.model.lora, seed)
    last = [0]
    tracked = ctx.track.sft_steps(train_offset(ctx.cfg, cycle), tcfg.steps, member)

    def on_step(step: int, loss: float) -> None:  # a resumed loop starts past 1
        advance(step - last[0], f"loss {loss:.3f}")
        last[0] = step
        if tracked:
            tracked(step, loss)

    with bar(ctx.console, label, tcfg.steps) as advance:
        stats = ctx.pool.train(trainable, tokenizer, draw, tcfg, seed, ctx.models_dir, on_step, resumable)
    merged(trainable)
    return stats


def _resumable(ctx: Context, name: str, phase: str, cycle: int, seed: int, steps: int, every: int) -> Resumable:
    """Where member `name`'s `phase` loop keeps its mid-stage state (`rsi.learn.resumable`)."""
    return Resumable(partial_dir(ctx.checkpoint(name)) / f"{phase}.pt", every, f"{phase} seed={seed} steps={steps}",
                     (cycle, "base" if cycle == 0 else "train", f"{name}/{phase}"))


def base_member(ctx: Context, k: int, name: str | None = None) -> Trained:
    """Member k of the base: a fresh model, trained on the seed data when `base.steps` > 0, saved
    as `name` (default its checkpoint name)."""
    seed = member_seed(ctx, 0, "base", k)
    model, tokenizer = fresh_model(ctx, seed)
    out = Trained(model_name(0, k), "")
    if ctx.cfg.base.steps:
        draw = mixture({}, seed_stream(ctx.task, ctx.cfg.seed_data, ctx.cfg.propose), None)
        label = "base: train" + (f" friend {k}" if k else "")
        b = ctx.cfg.base
        stats = _train_model(ctx, model, tokenizer, draw, b, seed, label,
                             _resumable(ctx, name or out.name, "sft", 0, seed, b.steps, b.checkpoint_every), 0, k)
        out.loss, out.sequences, out.tokens = stats.final_loss, stats.sequences, stats.tokens
    path = save_checkpoint(model, tokenizer, ctx.checkpoint(name or out.name), {"cycle": 0, "init": fresh_origin(ctx)})
    out.weights_sha256 = recorded_sha256(path)
    return out


def stage_base(ctx: Context, cycle: int) -> None:
    """The base model (and each friend, from its own seed): a tiny model trained from scratch on the
    seed data, or a pretrained model, trained on the seed data only when `base.steps` > 0."""
    with timed() as cost:
        done = [base_member(ctx, k) for k in range(ctx.cfg.label.friends + 1)]
    with ctx.ledger.stage(cycle, "base") as w:
        ctx.ledger.add_metrics(cycle, "base", {"final_loss": done[0].loss if ctx.cfg.base.steps else None,
                                               "friends_final_loss": [t.loss for t in done[1:] if t.loss is not None],
                                               "checkpoints": {t.name: t.weights_sha256 for t in done}})
        w.cost(train_sequences=sum(t.sequences for t in done), train_tokens=sum(t.tokens for t in done), **cost)
    for t in done:
        clear(ctx.checkpoint(t.name))


@dataclass(frozen=True)
class Plan:
    """What cycle's train stage does, read from the ledger."""

    everything: object  # ExampleRows: every accepted example up to the cycle
    replay: object
    new: object
    sft: bool
    proposer: bool
    grpo: bool

    @property
    def work(self) -> bool:
        return self.sft or self.proposer or self.grpo


def plan(ctx: Context, cycle: int) -> Plan:
    cfg = ctx.cfg
    everything = ctx.ledger.accepted_rows(upto_cycle=cycle)  # read from the ledger as drawn
    replay, new = everything.split(cycle)
    return Plan(everything, replay, new, sft=bool(new) and (cfg.train.steps > 0 or cfg.loop.mode == "refresh"),
                # self-play: the proposer learns from its scored proposals (inner loop only: they are its own samples)
                proposer=cfg.propose.by == "model" and cfg.propose.updates > 0 and cfg.loop.mode == "inner",
                grpo=cfg.grpo.steps > 0)


def train_member(ctx: Context, cycle: int, k: int, p: Plan, init_cycle: int, name: str | None = None) -> Trained:
    """Member k of `cycle`, from the member of `init_cycle` (the champion's cycle when the stage ran):
    under self-play first the proposer role, then SFT on the accepted samples, then GRPO; saved as
    `name` (default its checkpoint name)."""
    cfg = ctx.cfg
    seed = member_seed(ctx, cycle, "train", k)
    init = model_name(init_cycle, k)
    if cfg.loop.mode == "refresh":  # the seeds' outer loop: a fresh base on seed data + all verified data
        model, tokenizer = fresh_model(ctx, seed)
        tcfg, pools, made_from = cfg.base.model_copy(update={"mix": cfg.train.mix}), {"new": p.everything,
                                                                                     "replay": []}, fresh_origin(ctx)
    else:
        model, tokenizer = load_checkpoint(ctx.checkpoint(init), ctx.cfg.engine)
        tcfg, pools, made_from = cfg.train, {"new": p.new, "replay": p.replay}, init
    out = Trained(model_name(cycle, k), "")
    who = f"cycle {cycle}" + (f" friend {k}" if k else "")
    if p.proposer and k == 0:  # the champion wrote the proposals; train it first, while its weights still did
        out.proposer_logs = [replace(log, member=k) for log in _train_proposer(ctx, cycle, model, tokenizer, seed,
                                                                                 f"{who}: proposer")]
    if p.sft:
        draw = mixture(pools, seed_stream(ctx.task, cfg.seed_data, cfg.propose), tcfg.mix)
        stats = _train_model(ctx, model, tokenizer, draw, tcfg, seed, f"{who}: train",
                             _resumable(ctx, name or out.name, "sft", cycle, seed, tcfg.steps, tcfg.checkpoint_every),
                             cycle, k)
        out.loss, out.sequences, out.tokens = stats.final_loss, stats.sequences, stats.tokens
    if p.grpo:
        logs = _grpo(ctx, cycle, model, tokenizer, init, seed, f"{who}: grpo",
                     _resumable(ctx, name or out.name, "grpo", cycle, seed, cfg.grpo.steps, cfg.grpo.checkpoint_every))
        out.rl_logs = [replace(log, member=k) for log in logs]
        out.generated_tokens = sum(log.generated_tokens for log in logs)
        out.sequences += sum((log.trained_rows or 0) * cfg.grpo.inner_updates for log in logs)
    path = save_checkpoint(model, tokenizer, ctx.checkpoint(name or out.name),
                           {"cycle": cycle, "init": made_from, "sft": p.sft, "grpo_steps": cfg.grpo.steps})
    out.weights_sha256 = recorded_sha256(path)
    return out


def stage_train(ctx: Context, cycle: int) -> None:
    """Train this cycle's candidate and each friend (`train_member`). Skipped when none has work."""
    with timed() as cost:
        p = plan(ctx, cycle)
        init_cycle = champion_cycle(ctx.ledger)
        done = [train_member(ctx, cycle, k, p, init_cycle) for k in range(ctx.cfg.label.friends + 1)] if p.work else []
    losses = [t.loss for t in done if t.loss is not None]
    with ctx.ledger.stage(cycle, "train") as w:
        ctx.ledger.add_metrics(cycle, "train", TrainFacts(
            len(p.new), len(p.replay), losses[0] if losses else None, losses[1:],
            None if p.work else "no accepted samples this cycle", {t.name: t.weights_sha256 for t in done}).metrics())
        if rl_logs := [log for t in done for log in t.rl_logs]:
            ctx.ledger.add_metrics(cycle, "grpo", {"steps": [log.metrics() for log in rl_logs]})
        if proposer_logs := [log for t in done for log in t.proposer_logs]:
            ctx.ledger.add_metrics(cycle, "proposer", {"steps": [log.metrics() for log in proposer_logs]})
        w.cost(train_sequences=sum(t.sequences for t in done), train_tokens=sum(t.tokens for t in done),
               generated_tokens=sum(t.generated_tokens for t in done), **cost)
    for t in done:  # kept until the stage committed: a member done before a kill restores its final state
        clear(ctx.checkpoint(t.name))


def _train_proposer(ctx: Context, cycle: int, model, tokenizer, seed: int, label: str) -> list[ProposerStep]:
    """GRPO on this cycle's proposals, each rewarded by its learnability (`rsi.tasks.selfplay`), with
    advantages normalised among the proposals written for the same level."""
    p = ctx.cfg.propose
    proposals = ctx.ledger.proposals(cycle)
    rewards = proposal_rewards(proposals, solve_rates(ctx.ledger.problems(cycle=cycle), ctx.ledger.labels(cycle)))
    adv = group_normalised(rewards, [q.difficulty for q in proposals], ctx.cfg.grpo.variant)
    trainable = with_lora(model, ctx.cfg.model.lora, seed)
    with bar(ctx.console, label, p.updates) as advance:
        logs = recorded_update(trainable, tokenizer, [q.prompt for q in proposals],
                               [(q.completion, q.finished) for q in proposals], adv, ctx.cfg.grpo, p.updates,
                               p.batch_size, seed, on_step=lambda log: advance(1, f"loss {log.loss:.3f}"),
                               prefix=p.response_prefix)
    merged(trainable)
    if logs:
        logs[0] = replace(logs[0], reward_mean=sum(rewards) / max(1, len(rewards)),
                          learnable=sum(r > 0 for r in rewards), proposals=len(proposals))
    return logs


def _grpo(ctx: Context, cycle: int, model, tokenizer, init: str, seed: int, label: str,
          resumable: Resumable) -> list[GrpoStep]:
    g = ctx.cfg.grpo
    ref = load_checkpoint(ctx.checkpoint(init), ctx.cfg.engine)[0].eval() if g.beta else None
    rewards = [load_reward(r.fn, r.weight) for r in g.rewards]
    trainable = with_lora(model, ctx.cfg.model.lora, seed)
    last = [0]

    def on_step(log: GrpoStep) -> None:  # a resumed loop starts past step 1
        advance(log.step - last[0], f"reward {log.reward_mean:.2f}")
        last[0] = log.step

    with bar(ctx.console, label, g.steps) as advance:
        logs = grpo_train(trainable, tokenizer, ctx.ledger.problems(cycle=cycle), rewards, g, seed,
                          budget=lambda p: ctx.task.max_answer_chars(p.difficulty) + 1, ref_model=ref,
                          on_step=on_step, resumable=resumable)
    merged(trainable)  # in place: `model` now holds the adapter's update
    warn_reward_errors(ctx, label, logs)
    return logs


def warn_reward_errors(ctx: Context, label: str, logs: list[GrpoStep]) -> None:
    """Say once per stage, on the console, which rewards raised (those samples scored 0) and the
    first exception's text; the counts and texts are in the stage's GRPO metrics."""
    for r in ctx.cfg.grpo.rewards:
        stats = [s for log in logs if (s := log.rewards.get(r.fn))]
        if n := sum(s.errors for s in stats):
            first = next(s.first_error for s in stats if s.first_error is not None)
            total = sum(log.samples for log in logs)
            ctx.console.print(escape(f"warning: reward {r.fn!r} raised on {n} of {total} samples in {label} (each "
                                     f"scored 0; the verifier monitor alerts); the first: {first}"),
                              style="yellow", highlight=False)
