"""SFT's training speed on the default config: the engine's forward against the Hugging Face forward.

The train stage of the default run (`rsi run`) is SFT on batches of 128 examples. Before the
engine door, SFT ran the model's own forward over a right-padded batch (MKL matmuls, every padding
position computed, the whole (B, T, vocab) logits); now it runs `rsi.engine.forward.answer_loss`,
which for the tiny model is `rsi.engine.packed` (real tokens only, oneDNN matmuls, logits only where
a target is predicted). Both are timed here side by side, alternating, on the same weights and the
same batches (the default config's seed data across the eval ladder's first difficulties, so answer
lengths vary as in a cycle's mixture):

- `loss_max_diff`: the largest difference of the two losses on the same weights and batch (the
  paths compute one function; float rounding differs);
- `grad_max_diff`: the largest difference of a parameter gradient on the first batch;
- `tokens_per_s`: sequence tokens (context + target) trained per second, forward + backward +
  AdamW step, median over the timed steps, for each path, and their `ratio`;
- `mfu`: the engine path's model FLOPs (6 x parameters x tokens) per second against this CPU's
  measured float32 matmul peak (`grpo_speed.matmul_peak_gflops`).

    python benchmarks/train_speed.py [--steps 20]

The last line is JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from grpo_speed import matmul_peak_gflops

from rsi.config import load_config
from rsi.engine.backend import initial_model
from rsi.engine.forward import answer_loss, training
from rsi.learn.data import seed_stream
from rsi.learn.objectives import OBJECTIVES
from rsi.tasks import get_task


def hf_loss(model, contexts, targets, pad_id):
    """The old SFT loss: the model's own forward on a right-padded batch, cross-entropy on targets."""
    T = max(len(c) + len(t) for c, t in zip(contexts, targets, strict=True))
    ids = torch.full((len(targets), T), pad_id, dtype=torch.long)
    labels = torch.full((len(targets), T), -100, dtype=torch.long)
    for b, (c, t) in enumerate(zip(contexts, targets, strict=True)):
        ids[b, : len(c) + len(t)] = torch.tensor(c + t)
        labels[b, len(c) - 1: len(c) + len(t) - 1] = torch.tensor(t)
    return F.cross_entropy(model(input_ids=ids).logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="timed optimiser steps per path")
    ap.add_argument("--config", default="default")
    args = ap.parse_args()
    cfg = load_config(args.config)
    task = get_task(cfg.task)
    model, tok = initial_model(cfg.model, task.alphabet, cfg.seed)
    assert training(model) == "packed", "the engine path for this model is not the packed forward"
    top = min(cfg.eval.max_difficulty, cfg.seed_data.max_difficulty + cfg.curriculum.width + 2)
    draw = seed_stream(task, cfg.seed_data.model_copy(update={"max_difficulty": top}))
    rng = random.Random(0)
    make = OBJECTIVES.get(cfg.train.objective)
    batches = [make(tok, [draw(rng) for _ in range(cfg.train.batch_size)]) for _ in range(args.steps + 2)]
    pad = tok.pad_token_id
    paths = {"hf": hf_loss, "engine": answer_loss}
    models = {name: copy.deepcopy(model).train() for name in paths}
    opts = {name: torch.optim.AdamW(m.parameters(), lr=cfg.train.lr, betas=(0.9, 0.98)) for name, m in models.items()}

    # Agreement on the same weights: losses on every batch, gradients on the first.
    grads, loss_diff = {}, 0.0
    for name, fn in paths.items():
        m = models[name]
        loss = fn(m, *batches[0], pad)
        loss.backward()
        grads[name] = {n: p.grad.clone() for n, p in m.named_parameters()}
        m.zero_grad(set_to_none=True)
    with torch.no_grad():
        for b in batches:
            loss_diff = max(loss_diff, abs(float(hf_loss(models["hf"], *b, pad)) - float(answer_loss(models["engine"],
                                                                                                       *b, pad))))
    grad_diff = max(float((grads["hf"][n] - grads["engine"][n]).abs().max()) for n in grads["hf"])

    seconds: dict[str, list[float]] = {name: [] for name in paths}
    tokens = [sum(len(c) + len(t) for c, t in zip(*b, strict=True)) for b in batches]
    for k, batch in enumerate(batches):
        for name, fn in paths.items():  # alternating, so drift in the CPU's speed hits both alike
            m, opt = models[name], opts[name]
            t0 = time.perf_counter()
            loss = fn(m, *batch, pad)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), cfg.train.grad_clip)
            opt.step()
            if k >= 2:  # the first two steps warm up allocators and oneDNN's kernels
                seconds[name].append((time.perf_counter() - t0) / tokens[k])
    per_token = {name: statistics.median(s) for name, s in seconds.items()}
    peak = max(matmul_peak_gflops().values())
    n_params = sum(p.numel() for p in model.parameters())
    out = {
        "config": args.config,
        "batch_size": cfg.train.batch_size,
        "mean_tokens_per_batch": round(statistics.fmean(tokens), 1),
        "hf_tokens_per_s": round(1 / per_token["hf"]),
        "engine_tokens_per_s": round(1 / per_token["engine"]),
        "ratio": round(per_token["hf"] / per_token["engine"], 3),
        "mfu": round(6 * n_params / per_token["engine"] / (peak * 1e9), 4),
        "hf_mfu": round(6 * n_params / per_token["hf"] / (peak * 1e9), 4),
        "matmul_peak_gflops": round(peak, 1),
        "loss_max_diff": float(f"{loss_diff:.2e}"),
        "grad_max_diff": float(f"{grad_diff:.2e}"),
        "steps": args.steps,
        "threads": torch.get_num_threads(),
    }
    print(f"SFT on {args.config}: engine {out['engine_tokens_per_s']} tokens/s, Hugging Face forward "
          f"{out['hf_tokens_per_s']} tokens/s: {out['ratio']}x; engine MFU {out['mfu']:.1%} of {peak:.0f} GFLOP/s; "
          f"losses agree to {loss_diff:.1e}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
