"""The GRPO training loop: sample G answers per problem, score them, and step on `rsi.learn.grpo_loss`'s loss.

Each step draws `prompts_per_step` problems, samples `group_size` answers to each with the
current policy (batched, KV cache), scores them with the configured reward components, turns
the total into group-normalised advantages, and takes `inner_updates` optimiser steps on the
clipped surrogate (the first on-policy, so its ratio is 1). With `beta` > 0 a frozen reference
model (the cycle's starting champion) adds the KL penalty. Every step's diagnostics are returned
as a `rsi.records.GrpoStep`, for the ledger, the monitors and the report.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from functools import partial
from statistics import fmean, pstdev

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rsi.config import GrpoConfig
from rsi.engine import tape
from rsi.engine.forward import logprobs, sampler, taped
from rsi.engine.generate import Completion, generate
from rsi.engine.tokenizer import encode_answer, encode_prompt
from rsi.learn.grpo_loss import group_advantages, grpo_loss, keep_groups
from rsi.learn.optim import Optimiser
from rsi.learn.resumable import Resumable
from rsi.learn.rewards import Reward, score, verify_answers
from rsi.monitors.hacking import checked
from rsi.records import GrpoStep, Problem, ProposerStep, RewardStats


def grpo_train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    problems: Sequence[Problem],
    rewards: Sequence[Reward],
    cfg: GrpoConfig,
    seed: int,
    budget: Callable[[Problem], int],
    ref_model: PreTrainedModel | None = None,
    on_step: Callable[[GrpoStep], None] | None = None,
    resumable: Resumable | None = None,
) -> list[GrpoStep]:
    """Run `cfg.steps` GRPO steps on `problems`; return each step's statistics. With
    `resumable`, the loop's state is saved every `cfg.checkpoint_every` steps and a rerun goes on
    from the last save.

    `budget(problem)` is the answer budget in tokens when `cfg.max_new_tokens` is null.
    """
    if not problems:
        raise ValueError("GRPO needs at least one problem to sample answers for")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = Optimiser(model.parameters(), cfg)
    model.train()  # for the model's own forward (dropout); `generate` keeps the mode it finds
    # the first update back-propagates through the sampler's recorded forward (buffers reused step to step)
    recorder = tape.Recorder() if taped(model) else None
    G, logs, first = cfg.group_size, [], 1
    if resumable is not None and (saved := resumable.restore(model, opt, rng)):
        first, logs = saved["step"] + 1, [GrpoStep.read(m) for m in saved["logs"]]
    for step in range(first, cfg.steps + 1):
        batch = rng.sample(list(problems), min(cfg.prompts_per_step, len(problems)))
        max_new = cfg.max_new_tokens or max(budget(p) for p in batch)
        with sampler(model) as plain:
            outs = generate(plain, tokenizer, [p.prompt for p in batch], max_new, n=G,
                            temperature=cfg.temperature, seed=rng.randrange(2**31), recorder=recorder)
        flat: list[Completion] = [c for cs in outs for c in cs]
        flat_problems = [p for p in batch for _ in range(G)]
        texts = [c.text for c in flat]
        verdicts = verify_answers(texts, flat_problems)  # once: for `accuracy` and for the monitor's stats
        scores = score(rewards, texts, flat_problems, verdicts)
        total = torch.tensor(scores.total)
        adv = group_advantages(total, G, cfg.variant)
        rows = list(range(len(flat)))
        if cfg.variant == "dapo":
            rows = keep_groups(total, G).nonzero().flatten().tolist()
        update: dict = {"loss": None, "kl": None, "clip_fraction": None, "skipped": "every group's rewards were equal"}
        if rows:
            taped_logp = None
            traces = recorder.traces if recorder is not None else []
            if traces and sum(len(r) for r, _ in traces) == len(flat):  # every batch was recorded
                taped_logp = partial(tape.traced_logprobs, model, traces, [list(c.token_ids) for c in flat], rows)
            update = _update(model, tokenizer, opt, step, cfg, [batch[i // G] for i in rows],
                             [flat[i] for i in rows], adv[rows], ref_model, max_new, taped_logp)
        log = _step_log(step, scores, total, G, flat, checked(flat_problems, texts, verdicts, scores.total), update)
        logs.append(log)
        if resumable is not None:
            resumable.save(step, cfg.steps, model, opt, rng, {"logs": [s.metrics() for s in logs]})
        if on_step:
            on_step(log)
    model.eval()
    return logs


def _update(model, tokenizer, opt: Optimiser, step: int, cfg: GrpoConfig, problems, comps, adv, ref_model, max_new,
            taped_logp: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None) -> dict:
    """`inner_updates` optimiser steps on these completions. `taped_logp()`, when given, is the first
    update's log-probabilities through the sampler's recorded forward (`rsi.engine.tape`), at the
    weights that sampled them: no forward pass for it nor for the old policy's log-probabilities."""
    prompts = [encode_prompt(tokenizer, p.prompt) for p in problems]
    answers = [list(c.token_ids) for c in comps]
    first = taped_logp() if taped_logp is not None else None
    ref_logp = old_logp = None
    with torch.no_grad():
        if cfg.beta:
            ref_logp, _ = logprobs(ref_model, prompts, answers, tokenizer.pad_token_id)
        if cfg.inner_updates > 1:
            old_logp = first[0].detach() if first else logprobs(model, prompts, answers, tokenizer.pad_token_id)[0]
    losses, kls, clips = [], [], []
    for k in range(cfg.inner_updates):
        if k == 0 and first is not None:
            logp, mask = first
        else:
            logp, mask = logprobs(model, prompts, answers, tokenizer.pad_token_id)
        loss, stats = grpo_loss(logp, logp.detach() if old_logp is None else old_logp, adv, mask, cfg.variant,
                                eps=cfg.eps, eps_high=cfg.eps_high, beta=cfg.beta, ref_logp=ref_logp,
                                max_tokens=max_new)
        opt.step(step, loss, cfg.steps)
        losses.append(loss.item())
        kls.append(stats.kl)
        clips.append(stats.clip_fraction)
    return {"loss": fmean(losses), "kl": fmean(kls), "clip_fraction": fmean(clips), "trained_rows": len(comps)}


def _step_log(step: int, scores, total: torch.Tensor, G: int, flat: list[Completion], checks, update: dict
              ) -> GrpoStep:
    groups = total.view(-1, G)
    rewards = {name: RewardStats(fmean(values), pstdev(values), scores.errors[name], scores.first_errors.get(name))
               for name, values in scores.components.items()}
    return GrpoStep(step, float(total.mean()), float(total.std()) if total.numel() > 1 else 0.0,
                    float((groups == groups[:, :1]).all(dim=1).float().mean()), fmean(c.n_tokens for c in flat),
                    len(flat), sum(c.n_tokens for c in flat), rewards, checks, **update)


def group_normalised(rewards: Sequence[float], groups: Sequence[object], variant: str) -> torch.Tensor:
    """Advantages of `rewards` normalised within each group (rows sharing a `groups` key), for groups
    of any size; see `rsi.learn.grpo_loss.group_advantages`."""
    out = torch.zeros(len(rewards))
    members: dict[object, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    for rows in members.values():
        if len(rows) > 1:
            out[rows] = group_advantages(torch.tensor([rewards[i] for i in rows]), len(rows), variant)  # type: ignore[arg-type]
    return out


def recorded_update(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    completions: Sequence[tuple[str, bool]],
    advantages: torch.Tensor,
    cfg: GrpoConfig,
    steps: int,
    batch_size: int,
    seed: int,
    on_step: Callable[[ProposerStep], None] | None = None,
    prefix: str = "",
) -> list[ProposerStep]:
    """`steps` GRPO updates on completions this model sampled earlier (the self-play proposer's).

    `completions[i]` = (text, finished) answers `prompts[i]` (fed as they are, not as problems; each
    completion starts with `prefix`) with `advantages[i]`. The rows are
    re-tokenised; their log-probabilities under the starting weights are the old policy's, so the
    first update is on-policy (ratio 1) and later ones are clipped PPO-style. Rows with advantage 0
    carry no signal and are skipped. Uses `cfg`'s variant, lr, eps and grad_clip; no KL term.
    """
    rows = [i for i in range(len(prompts)) if float(advantages[i]) != 0.0]
    if not rows or not steps:
        return [ProposerStep(0, skipped="every proposal's reward was equal")] if steps else []
    torch.manual_seed(seed)
    rng = random.Random(seed)
    p_ids = [encode_prompt(tokenizer, prompts[i], prefix) for i in rows]
    a_ids = [encode_answer(tokenizer, text, prefix)[: None if done else -1]  # a cut-off completion had no end token
             for text, done in (completions[i] for i in rows)]
    adv = advantages[rows]
    pad = tokenizer.pad_token_id
    with torch.no_grad():  # the old policy: these weights, before any update
        old = []
        for k in range(0, len(rows), batch_size):
            logp, mask = logprobs(model, p_ids[k:k + batch_size], a_ids[k:k + batch_size], pad)
            old += [logp[b, : int(mask[b].sum())] for b in range(len(logp))]
    # a few updates on recorded completions: at grpo.lr from the first, no warm-up
    opt = Optimiser(model.parameters(), cfg.model_copy(update={"warmup_steps": 0, "schedule": "constant"}))
    model.train()
    logs = []
    for step in range(1, steps + 1):
        batch = rng.sample(range(len(rows)), min(batch_size, len(rows)))
        logp, mask = logprobs(model, [p_ids[b] for b in batch], [a_ids[b] for b in batch], pad)
        old_logp = torch.zeros_like(logp)
        for j, b in enumerate(batch):
            old_logp[j, : len(old[b])] = old[b]
        loss, stats = grpo_loss(logp, old_logp, adv[batch], mask, cfg.variant, eps=cfg.eps, eps_high=cfg.eps_high,
                                max_tokens=logp.shape[1])
        opt.step(step, loss, steps)
        log = ProposerStep(step, loss.item(), len(batch), stats.clip_fraction, stats.ratio_mean)
        logs.append(log)
        if on_step:
            on_step(log)
    model.eval()
    return logs
