"""GRPO speed, side by side on this CPU: TRL's `GRPOTrainer` against rsi's GRPO (issue #3).

The same randomly initialised Qwen2 model (4 layers, hidden 128, 1.05 M parameters, the sort
task's character tokenizer), the same prompts (sort 6 digits), 8 prompts x 8 generations x 16 new
tokens per step, the same reward (`position_reward` below, TRL's signature, which rsi loads
unchanged from this file), the same loss (`grpo`, beta 0, one update per batch, lr 1e-3), both in
float32. TRL runs without gradient checkpointing (its GRPOConfig turns it on by default; on this
model it makes no measurable difference) and with bf16 off (its default on, which on this CPU
changed TRL's step time by under 10 %). rsi runs as `rsi run` would: the lean sampler, the first
(here only) update back-propagated through the sampler's recorded forward (`rsi.engine.tape`).
Each side runs STEPS steps, `--repeats` times, alternating; step times are medians after WARMUP
steps of each run, then the median over repeats; `ratio` is the median of the per-repeat ratios. Prints samples/s of
each, their ratio, rsi's model FLOPs utilisation against this CPU's measured float32 matmul peak
(the better of PyTorch's default MKL kernel and oneDNN's, which `rsi.engine.linear` uses), the
mean reward over the last 10 steps of each (the learning curves should match), and generation
throughput of rsi's sampler against `model.generate` on the same model and batch. Run it with
nothing else on the machine. The last line is JSON.

    .venv/bin/python benchmarks/grpo_speed.py [--steps 30] [--repeats 3] [--curve-steps 200] [--profile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from rsi.config import GrpoConfig
from rsi.engine.generate import generate
from rsi.engine.tokenizer import build_char_tokenizer, encode_prompt
from rsi.learn.grpo import grpo_train
from rsi.learn.rewards import load_reward
from rsi.tasks import get_task, problems

PROMPTS, GENERATIONS, NEW_TOKENS, LR, DIFFICULTY = 8, 8, 16, 1e-3, 6
WARMUP = 3


def position_reward(completions, answer, **kwargs):
    """Fraction of the sorted answer's characters the completion has in the right place."""
    return [sum(a == b for a, b in zip(c, ans, strict=False)) / len(ans)
            for c, ans in zip(completions, answer, strict=True)]


def build(seed: int = 0):
    task = get_task("sort")
    tok = build_char_tokenizer(task.alphabet)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=128, intermediate_size=512, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(cfg), tok, problems(task, DIFFICULTY, "train", 512)


def matmul_peak_gflops() -> dict[str, float]:
    """Best of several 1024^3 float32 matmuls through MKL (`a @ b`, what `F.linear` calls on CPU) and
    through oneDNN (`rsi.engine.linear`'s kernel): this CPU's practical compute ceiling is the larger."""
    from rsi.engine.linear import ONEDNN, _dnn

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    kernels = {"mkl": lambda: a @ b}
    if ONEDNN:
        kernels["onednn"] = lambda: _dnn(a, b, None)
    best = dict.fromkeys(kernels, 0.0)
    for _ in range(20):
        for name, fn in kernels.items():
            t = time.perf_counter()
            fn()
            best[name] = max(best[name], 2 * 1024**3 / (time.perf_counter() - t) / 1e9)
    return best


def step_flops(model, prompt_len: int) -> float:
    """Model FLOPs of one step: sampling (prefill + decode) plus forward and backward on the samples."""
    n = sum(p.numel() for p in model.parameters())  # tied embedding counted once: it is the LM head matmul
    rows, seq = PROMPTS * GENERATIONS, prompt_len + NEW_TOKENS
    return 2 * n * rows * seq + 6 * n * rows * seq


def run_rsi(steps: int, reward_fn: str) -> tuple[list[float], list[float]]:
    model, tok, probs = build()
    cfg = GrpoConfig(steps=steps, prompts_per_step=PROMPTS, group_size=GENERATIONS, lr=LR, max_new_tokens=NEW_TOKENS)
    times, rewards, last = [], [], [time.perf_counter()]

    def on_step(log):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now
        rewards.append(log.reward_mean)

    grpo_train(model, tok, probs, [load_reward(reward_fn, 1.0)], cfg, seed=0, budget=lambda p: NEW_TOKENS,
               on_step=on_step)
    return times, rewards


def run_trl(steps: int) -> tuple[list[float], list[float]]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    model, tok, probs = build()
    data = Dataset.from_dict({"prompt": [tok.bos_token + p.prompt for p in probs], "answer": [p.answer for p in probs]})
    times, rewards, last = [], [], [time.perf_counter()]

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "reward" in logs:
                rewards.append(logs["reward"])

    args = GRPOConfig(output_dir="/tmp/rsi-trl-bench", per_device_train_batch_size=PROMPTS * GENERATIONS,
                      num_generations=GENERATIONS, max_completion_length=NEW_TOKENS, learning_rate=LR,
                      lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, beta=0.0,
                      loss_type="grpo", num_iterations=1, temperature=1.0, max_steps=steps, logging_steps=1,
                      report_to="none", save_strategy="no", use_cpu=True, bf16=False, disable_tqdm=True,
                      gradient_checkpointing=False,
                      dataloader_num_workers=0, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = GRPOTrainer(model=model, reward_funcs=position_reward, args=args, train_dataset=data,
                              processing_class=tok, callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)  # its per-step dicts would bury the figures
        last[0] = time.perf_counter()
        trainer.train()
    return times, rewards


def generation_throughput(repeats: int = 5) -> tuple[float, float]:
    """Tokens/s of rsi's sampler and of `model.generate`, 64 rows x 16 new tokens, sampling at T=1."""
    model, tok, probs = build()
    model.eval()
    prompts = [p.prompt for p in probs[:PROMPTS]]
    ids = torch.tensor([encode_prompt(tok, p) for p in prompts]).repeat_interleave(GENERATIONS, 0)
    ours, theirs = [], []
    for r in range(repeats):
        t = time.perf_counter()
        outs = generate(model, tok, prompts, NEW_TOKENS, n=GENERATIONS, temperature=1.0, seed=r)
        ours.append(sum(c.n_tokens for cs in outs for c in cs) / (time.perf_counter() - t))
        t = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=1.0,
                                 top_k=0, max_new_tokens=NEW_TOKENS, pad_token_id=tok.pad_token_id)
        new = out[:, ids.shape[1]:]
        theirs.append(int((new != tok.pad_token_id).sum()) / (time.perf_counter() - t))
    return statistics.median(ours), statistics.median(theirs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3, help="alternating TRL/rsi runs; medians are reported")
    ap.add_argument("--profile", action="store_true", help="also print where rsi's step time goes")
    ap.add_argument("--curve-steps", type=int, default=0,
                    help="also run each side this many steps and print mean reward per 20 steps (learning curves)")
    args = ap.parse_args()
    peaks = matmul_peak_gflops()
    peak = max(peaks.values())
    model, tok, probs = build()
    n_params = sum(p.numel() for p in model.parameters())
    prompt_len = len(encode_prompt(tok, probs[0].prompt))
    flops = step_flops(model, prompt_len)
    print(f"model: Qwen2, {n_params / 1e6:.2f} M parameters; step: {PROMPTS} prompts x {GENERATIONS} generations x "
          f"{NEW_TOKENS} new tokens; prompt {prompt_len} tokens; {flops / 1e9:.2f} GFLOP of model arithmetic per step")
    print(f"float32 matmul peak on this CPU ({torch.get_num_threads()} threads): "
          + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))

    # The two sides alternate, `--repeats` times, so drifts in the machine's speed hit both alike.
    trl_s, rsi_s, ratios = [], [], []
    for _ in range(args.repeats):
        trl_t, trl_r = run_trl(args.steps)
        rsi_t, rsi_r = run_rsi(args.steps, f"{__file__}:position_reward")
        trl_s.append(statistics.median(trl_t[WARMUP:]))
        rsi_s.append(statistics.median(rsi_t[WARMUP:]))
        ratios.append(round(trl_s[-1] / rsi_s[-1], 2))
    trl_s, rsi_s = statistics.median(trl_s), statistics.median(rsi_s)
    samples = PROMPTS * GENERATIONS
    out = {
        "rsi_step_s": round(rsi_s, 4), "trl_step_s": round(trl_s, 4),
        "rsi_samples_per_s": round(samples / rsi_s, 1), "trl_samples_per_s": round(samples / trl_s, 1),
        "ratio": statistics.median(ratios), "ratio_per_repeat": ratios, "mfu": round(flops / rsi_s / (peak * 1e9), 4),
        "matmul_peak_gflops": round(peak, 1), "mkl_peak_gflops": round(peaks["mkl"], 1),
        "rsi_reward_last10": round(statistics.fmean(rsi_r[-10:]), 3),
        "trl_reward_last10": round(statistics.fmean(trl_r[-10:]), 3),
        "rsi_reward_first3": round(statistics.fmean(rsi_r[:3]), 3),
        "trl_reward_first3": round(statistics.fmean(trl_r[:3]), 3),
    }
    ours, theirs = generation_throughput()
    out["rsi_generate_tokens_per_s"], out["hf_generate_tokens_per_s"] = round(ours), round(theirs)
    print(f"TRL GRPOTrainer: {trl_s:.3f} s/step, {out['trl_samples_per_s']} samples/s; reward "
          f"{out['trl_reward_first3']} (first 3 steps) -> {out['trl_reward_last10']} (last 10)")
    print(f"rsi grpo_train:  {rsi_s:.3f} s/step, {out['rsi_samples_per_s']} samples/s; reward "
          f"{out['rsi_reward_first3']} (first 3 steps) -> {out['rsi_reward_last10']} (last 10)")
    print(f"ratio rsi/TRL samples per second: {out['ratio']}x (per repeat: {ratios}); "
          f"rsi MFU {out['mfu']:.1%} of {peak:.0f} GFLOP/s")
    print(f"generation, 64 rows x 16 tokens: rsi {ours:.0f} tokens/s, model.generate {theirs:.0f} tokens/s")
    if args.curve_steps:
        curves = {"trl": run_trl(args.curve_steps)[1],
                  "rsi": run_rsi(args.curve_steps, f"{__file__}:position_reward")[1]}
        for name, r in curves.items():
            means = [round(statistics.fmean(r[i:i + 20]), 3) for i in range(0, len(r), 20)]
            print(f"reward per 20 steps, {name}: {means}")
            out[f"{name}_reward_curve"] = means
    if args.profile:
        profile_rsi()
    print(json.dumps(out))


def profile_rsi(steps: int = 30) -> None:
    """Where rsi's step time goes: median milliseconds of each phase of a step, then the torch
    profiler's top operators over two steps."""
    from torch.profiler import ProfilerActivity, profile

    from rsi.learn import grpo as rl

    model, tok, probs = build()
    cfg = GrpoConfig(steps=steps, prompts_per_step=PROMPTS, group_size=GENERATIONS, lr=LR, max_new_tokens=NEW_TOKENS)
    reward = [load_reward(f"{__file__}:position_reward", 1.0)]
    phases: dict[str, list[float]] = {}
    originals = {name: getattr(rl, name) for name in ("generate", "score", "_update")}
    backward = torch.Tensor.backward

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            phases.setdefault(name, []).append(time.perf_counter() - t)
            return out
        return wrapper

    for name, fn in originals.items():
        setattr(rl, name, timed(name, fn))
    torch.Tensor.backward = timed("backward (in update)", backward)
    try:
        grpo_train(model, tok, probs, reward, cfg, seed=0, budget=lambda p: NEW_TOKENS)
    finally:
        for name, fn in originals.items():
            setattr(rl, name, fn)
        torch.Tensor.backward = backward
    print("rsi step phases, median ms after warm-up: " + ", ".join(
        f"{'sample' if k == 'generate' else 'update' if k == '_update' else k} "
        f"{statistics.median(v[WARMUP:]) * 1000:.1f}" for k, v in phases.items()))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        grpo_train(model, tok, probs, reward, cfg.model_copy(update={"steps": 2}), seed=1, budget=lambda p: NEW_TOKENS)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
