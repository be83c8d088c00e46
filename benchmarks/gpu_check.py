"""The GPU check: rsi on CUDA end to end, with throughput against the GPU's bf16 peak.

On a machine with a CUDA GPU (about 5 minutes on one H200), in order:

1. `forward`: a SmolLM2-135M-shaped model (Llama, 30 layers, width 576, 9 query / 3 key-value
   heads, a 49,152-token vocabulary; random weights from a seed: the real GGUF file is larger
   than what travels to the GPU machine) on the CPU in float32 and on the GPU through rsi's engine
   door in bfloat16 (`engine.dtype=bfloat16`: float32 weights, autocast): the largest logit
   difference, its ratio to the logits' spread, and how often the top token agrees.
2. `generation_tokens_per_s`: `rsi.engine.generate` sampling 64 prompts x 8 answers x 128 tokens
   on the GPU (the model's own forward, a KV cache). Each timed figure is the median of `REPEAT`
   runs after an untimed warm-up run.
3. `training_tokens_per_s`, `training_mfu`: SFT steps (`forward.answer_loss`, the one optimiser)
   on 32 x 256-token sequences; model FLOPs (6 x parameters x tokens) per second against the
   GPU's bf16 matmul peak measured here (`bf16_peak_tflops`, an 8192^3 product).
4. `grpo_step_s`: one GRPO step (`rsi.learn.grpo.grpo_train`: 8 prompts x 8 answers, sampling,
   scoring, the update) of the same model.
5. `quick`: `rsi run quick --set engine.device=cuda` end to end: its wall time and frontier.

    python benchmarks/gpu_check.py [--skip-quick] [--allow-cpu]

`--allow-cpu` runs the same code on the CPU with small sizes (a smoke test of this script). The
last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from rsi.config import EngineConfig, GrpoConfig
from rsi.engine import device, forward
from rsi.engine.generate import generate
from rsi.engine.tokenizer import build_char_tokenizer
from rsi.learn.grpo import grpo_train
from rsi.learn.optim import Optimiser
from rsi.learn.rewards import load_reward
from rsi.tasks import get_task, problems

VOCAB = 49152


def smollm2_shaped(tokenizer, small: bool) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=576 if not small else 64, intermediate_size=1536 if not
                      small else 128, num_hidden_layers=30 if not small else 2, num_attention_heads=9 if not small
                      else 2, num_key_value_heads=3 if not small else 1, max_position_embeddings=2048,
                      tie_word_embeddings=True, rope_theta=100000.0, pad_token_id=tokenizer.pad_token_id,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      attn_implementation="sdpa")
    return LlamaForCausalLM(cfg).eval()


def wide_tokenizer(alphabet: str, small: bool):
    """A character tokenizer with SmolLM2's vocabulary size (the task's characters, then CJK ones)."""
    extra = VOCAB - 3 - len(set(alphabet)) if not small else 64
    return build_char_tokenizer(alphabet + "".join(chr(0x4E00 + i) for i in range(extra)))


def timed(fn, sync):
    sync()
    t = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - t, out


REPEAT = 3  # timed runs of each measure after one untimed warm-up (kernels, caches, the allocator); the median


def median_timed(fn, sync, repeat: int = REPEAT):
    """(median seconds of `repeat` calls after one warm-up call, the last call's result)."""
    fn()
    runs = [timed(fn, sync) for _ in range(repeat)]
    return statistics.median(t for t, _ in runs), runs[-1][1]


def bf16_peak_tflops(on: torch.device, sync) -> float | None:
    if on.type != "cuda":
        return None
    a, b = (torch.randn(8192, 8192, device=on, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    times = [timed(lambda: a @ b, sync)[0] for _ in range(10)]
    return 2 * 8192**3 / statistics.median(times) / 1e12


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-quick", action="store_true")
    ap.add_argument("--allow-cpu", action="store_true", help="run on the CPU with small sizes (a smoke test)")
    args = ap.parse_args()
    gpu = torch.cuda.is_available()
    if not gpu and not args.allow_cpu:
        print(json.dumps({"cuda": False, "error": "no CUDA GPU here; --allow-cpu runs a small smoke test"}))
        sys.exit(2)
    small = not gpu
    engine = EngineConfig(device="cuda" if gpu else "cpu", dtype="bfloat16")
    placement = device.choose(engine)
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    out: dict = {"cuda": gpu, "device": torch.cuda.get_device_name() if gpu else "cpu",
                 "torch": torch.__version__}
    task = get_task("addition")
    tok = wide_tokenizer(task.alphabet, small)

    # 1. the same forward on the CPU (float32) and through the door on the device (bf16)
    model = smollm2_shaped(tok, small)
    n_params = sum(p.numel() for p in model.parameters())
    ids = torch.randint(3, len(tok), (4, 128 if not small else 16))
    with torch.no_grad():
        want = model(input_ids=ids).logits.float()
        device.place(model, placement)
        with device.autocast(model):
            got = model(input_ids=ids.to(placement.device)).logits.float().cpu()
    diff = (got - want).abs()
    out["forward"] = {"max_abs_diff": float(diff.max()), "max_diff_over_logit_std": float(diff.max() / want.std()),
                      "top1_agreement": float((got.argmax(-1) == want.argmax(-1)).float().mean()),
                      "paths": [forward.sampling(model), forward.training(model)], "params": n_params}

    # 2. generation
    prompts = [p.prompt for p in problems(task, 8, "train", 64 if not small else 4)]
    n, new = (8, 128) if not small else (2, 8)
    s, outs = median_timed(lambda: generate(model, tok, prompts, new, n=n, temperature=1.0, seed=0,
                                            batch_size=len(prompts) * n), sync)
    out["generation_tokens_per_s"] = round(sum(c.n_tokens for cs in outs for c in cs) / s)

    # 3. SFT steps
    B, T = (32, 256) if not small else (4, 16)
    opt = Optimiser(model.parameters(), GrpoConfig(lr=1e-5))
    model.train()
    ctx = [[tok.bos_token_id, *torch.randint(3, len(tok), (T // 2 - 1,)).tolist()] for _ in range(B)]
    tgt = [torch.randint(3, len(tok), (T // 2,)).tolist() for _ in range(B)]

    def step(k):
        loss = forward.answer_loss(model, ctx, tgt, tok.pad_token_id)
        opt.step(k, loss, 100)
        return loss.detach().item()

    for k in range(3):
        step(k + 1)
    times = [timed(lambda k=k: step(k + 4), sync)[0] for k in range(10)]
    tokens_per_s = B * T / statistics.median(times)
    peak = bf16_peak_tflops(placement.device, sync)
    out["training_tokens_per_s"] = round(tokens_per_s)
    out["bf16_peak_tflops"] = round(peak, 1) if peak else None
    out["training_mfu"] = round(6 * n_params * tokens_per_s / (peak * 1e12), 4) if peak else None
    out["generation_mfu"] = round(2 * n_params * out["generation_tokens_per_s"] / (peak * 1e12), 5) if peak else None

    # 4. one GRPO step
    g = GrpoConfig(steps=1, prompts_per_step=8 if not small else 2, group_size=8 if not small else 2,
                   max_new_tokens=64 if not small else 8, lr=1e-6)
    items = problems(task, 6, "train", 16)
    s, logs = median_timed(lambda: grpo_train(model, tok, items, [load_reward("accuracy", 1.0)], g, seed=0,
                                              budget=lambda p: 64), sync)
    out["grpo_step_s"] = round(s, 2)
    out["grpo_loss"] = logs[0].loss
    device.release_cache()

    # 5. quick on the device, end to end
    if not args.skip_quick:
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "quick"
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "rsi.cli", "run", "quick", "--run-dir", str(run), "--set",
                                   f"engine.device={engine.device}"], capture_output=True, text=True)
            wall = time.perf_counter() - t
            status = subprocess.run([sys.executable, "-m", "rsi.cli", "status", str(run), "--json"],
                                    capture_output=True, text=True)
            st = json.loads(status.stdout) if status.returncode == 0 else {}
            out["quick"] = {"rc": done.returncode, "wall_s": round(wall, 1), "frontier": st.get("frontier"),
                            "tail": done.stderr[-400:] if done.returncode else ""}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
