"""A run's champion as a plain Hugging Face model directory with a model card. Backs
`rsi export RUN --model DIR`.

`export_model(run_dir, out)` verifies the champion's checkpoint against its manifest, copies its
weights, config and generation config, saves its tokenizer so that a plain `AutoTokenizer` encodes
a prompt as rsi does (rsi's character tokenizer starts every text with `<bos>`; checkpoints of
runs made before it said so are mended here), and writes `README.md`: how the model was made (task,
cycles, accepted data by source, frontier, the held-out ladder with confidence intervals) in the
Hub's model-card form, so that uploading it is one `huggingface-cli upload USER/NAME DIR`.

Example:
    >>> export_model(Path("runs/demo"), Path("out/demo-model"))   # doctest: +SKIP
    PosixPath('out/demo-model')
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from rsi.engine.manifest import verify_checkpoint
from rsi.errors import RsiError
from rsi.run.rundir import MODELS, open_ledger
from rsi.views.export import rows
from rsi.views.status import status

COPIED = ("model.safetensors", "model.safetensors.index.json", "config.json", "generation_config.json")


def plain_tokenizer(tokenizer):
    """`tokenizer`, set to add `<bos>` by itself when rsi would prepend it (no chat template, a BOS
    token it does not add yet): then plain transformers encodes prompts as rsi does."""
    if getattr(tokenizer, "chat_template", None) or tokenizer.bos_token_id is None:
        return tokenizer
    if tokenizer("0")["input_ids"][:1] != [tokenizer.bos_token_id]:
        tokenizer.add_bos_token = True
    return tokenizer


def _ladder(run_dir: Path, champion: str) -> list[dict]:
    with open_ledger(run_dir) as ledger:
        latest: dict[int, dict] = {}
        for r in sorted(ledger.evals(champion), key=lambda r: r["cycle"]):
            latest[r["difficulty"]] = r
    return [latest[d] for d in sorted(latest)]


def card(run_dir: Path) -> str:
    """The model card (README.md) of the run's champion."""
    st = status(run_dir)
    with open_ledger(run_dir) as ledger:
        config = (ledger.run_info() or {}).get("config", {})
    made_in = max((int(c) for c, m in st["champions"].items() if m == st["champion"]), default=0)
    # what the champion trained on: data kept up to the cycle that made it (later cycles' data made no champion)
    by_source = Counter(r["source"] for r in rows(run_dir) if r["cycle"] <= made_in)
    ladder = _ladder(Path(run_dir), st["champion"])
    task, labelled = config.get("task", "?"), st["labeled_max_difficulty"]
    ran = f"; the run went on for {st['cycles_completed'] - made_in} more cycle(s), none promoted" \
        if st["cycles_completed"] > made_in else ""
    lines = [
        "---", "library_name: transformers", "pipeline_tag: text-generation", "tags:", "- rsi",
        "- self-improvement", "---", "",
        f"# {st['name']}: {st['champion']}", "",
        f"Made by rsi (recursive self-improvement loops for language models) on task `{task}`: the "
        f"model was trained on ground-truth labels up to difficulty {labelled}, then for {made_in} "
        "cycles on answers it (and the champions before it) wrote that passed "
        f"{'the task verifier' if config.get('label', {}).get('labeler') == 'verifier' else 'a vote among samples'}; "
        "each cycle's candidate was promoted only if it did better on held-out problems.", "",
        "## How it was made", "",
        "| | |", "|---|---|",
        f"| task | `{task}` |",
        f"| run | `{st['name']}` |",
        f"| cycles | made in cycle {made_in} of the run's {st['cycles_completed']}{ran} |",
        f"| champion | `{st['champion']}` (weights sha256 `{st['champion_weights_sha256']}`) |",
        f"| labelled up to difficulty | {labelled} |",
        f"| frontier | {st['frontier_at_cycle0']} (base model) -> {st['frontier']} "
        f"(every difficulty up to it at >= {st['threshold']:.0%} held-out accuracy) |",
        f"| mean held-out accuracy | {st['mean_accuracy_at_cycle0']:.3f} -> {st['mean_accuracy']:.3f} |",
        f"| accepted training data | {sum(by_source.values())} examples kept up to cycle {made_in}"
        + (": " if by_source else "") + ", ".join(f"{n} {s}" for s, n in sorted(by_source.items()))
        + f", beside ground-truth seed data up to difficulty {labelled} |",
        f"| compute | {st['cost']['cpu_s'] / 3600:.2f} CPU-hours, {st['cost']['wall_s'] / 60:.1f} min wall |",
        "", "## Held-out ladder", "",
        "| difficulty | accuracy | 95% interval | problems |", "|---|---|---|---|",
        *(f"| {r['difficulty']} | {r['accuracy']:.3f} | {r['lo']:.3f}-{r['hi']:.3f} | {r['n']} |" for r in ladder),
        "", "## Use", "", "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
        'tok = AutoTokenizer.from_pretrained("PATH")', 'model = AutoModelForCausalLM.from_pretrained("PATH")',
        'ids = tok("PROMPT", return_tensors="pt").input_ids  # the tokenizer adds what rsi adds',
        "out = model.generate(ids, max_new_tokens=64, do_sample=False)",
        "print(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True))", "```", "",
        "The run's ledger (`ledger.sqlite` in the run directory) records every problem, answer, label, "
        "evaluation and gate decision behind these figures.", ""]
    return "\n".join(lines)


def export_model(run_dir: Path, out: Path) -> Path:
    """Write the champion of the run in `run_dir` to `out` as a plain HF model directory with a card."""
    from transformers import AutoTokenizer

    run_dir, out = Path(run_dir), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RsiError(f"--model {out} exists and is not an empty directory; choose another, or remove it first.")
    champion = status(run_dir)["champion"]
    src = run_dir / MODELS / champion
    verify_checkpoint(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        for name in COPIED:
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)
        for f in src.glob("model-*.safetensors"):
            shutil.copy2(f, tmp / f.name)
        plain_tokenizer(AutoTokenizer.from_pretrained(src)).save_pretrained(tmp)
        (tmp / "README.md").write_text(card(run_dir), encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
