"""Tasks for pretrained models: word_arithmetic, jsonl (math-verify behind a killable worker), reasoning_gym."""

import json
import time
from types import SimpleNamespace

import pytest

from rsi.errors import ConfigError
from rsi.resolve import from_dict
from rsi.tasks import get_task, heldout_set, problem, problems
from rsi.tasks.jsonl import JsonlTask, TaskFileError
from rsi.tasks.mathcheck import MathChecker

WA = get_task("word_arithmetic")


@pytest.mark.parametrize("d", [1, 3, 8])
def test_word_arithmetic_answer_is_the_count_the_story_describes(d):
    for p in problems(WA, d, "train", 20):
        count, story = None, p.prompt.split(" How many")[0]
        for sentence in story.split(". "):
            words = sentence.rstrip(".").split()
            if " has " in sentence and count is None:
                count = int(words[words.index("has") + 1])
            elif "finds" in words:
                count += int(words[words.index("finds") + 1])
            elif "gives" in words:
                count -= int(words[words.index("gives") + 1])
            elif words[-1] == "double":
                count *= 2
        assert str(count) == p.answer and count > 0
        assert p.prompt.count(". Then ") == d - 1


def test_word_arithmetic_verifier_reads_the_answer_tag_else_the_last_number():
    p = problem(WA, 2, "heldout", 0)
    wrong = str(int(p.answer) + 1)
    assert WA.verify(p, f"<think>{wrong}?</think><answer>{p.answer}</answer>").correct
    assert not WA.verify(p, f"<think>{p.answer}</think><answer>{wrong}</answer>").correct
    assert WA.verify(p, f"first {wrong}, so {p.answer}").correct
    assert not WA.verify(p, "no idea").correct
    assert WA.well_formed(p, f"<answer> {p.answer} </answer>") and not WA.well_formed(p, p.answer)


def write_rows(tmp_path, rows, name="qa.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def qa(tmp_path_factory):
    rows = [{"question": f"What is {i} + {i}?", "answer": str(2 * i), "difficulty": 1 + i % 2} for i in range(60)]
    rows.append({"question": "Simplify 2/4.", "answer": "\\frac{1}{2}"})
    task = JsonlTask(write_rows(tmp_path_factory.mktemp("qa"), rows))
    yield task
    task.checker.close()


def test_jsonl_splits_rows_by_content_and_keeps_them_disjoint(qa):
    assert (qa.min_difficulty, qa.max_difficulty) == (1, 2)
    for d in (1, 2):
        train = {p.prompt for p in problems(qa, d, "train", 200)}
        held = {p.prompt for p in problems(qa, d, "heldout", 50)}
        assert train and held and not train & held
        assert len(train) == len(qa.rows[("train", d)])  # item i cycles through the split's rows


def test_a_small_file_is_evaluated_on_its_distinct_heldout_rows_only(qa):
    """50 held-out items of a 60-row file reuse a few rows by index; the run evaluates (and the gate
    counts) each distinct problem once, and evals.n says how many there are."""
    import rsi.stages.evaluate
    from rsi.engine.generate import Completion

    for d in (1, 2):
        held = heldout_set(qa, d, 50)
        assert len(held) == len(qa.rows[("heldout", d)]) < 50
        assert len({p.prompt for p in held}) == len(held)
    asked = []
    session = SimpleNamespace(run=lambda jobs, **k: [asked.extend(j.prompts) or [
        [Completion("<answer>x</answer>", 1, True)] for _ in j.prompts] for j in jobs])
    r = rsi.stages.evaluate.evaluate_difficulty(session, qa, 1, 50, "m")
    assert r.n == len(qa.rows[("heldout", 1)]) == len(r.per_problem) == len(asked) and r.correct == 0


def test_jsonl_answers_are_checked_with_math_verify(qa):
    half = next(p for s in ("train", "heldout") for p in problems(qa, 1, s, 40) if p.prompt.startswith("Simplify"))
    assert qa.verify(half, "<think>divide</think><answer>0.5</answer>").correct
    assert qa.verify(half, "<answer>$\\frac{2}{4}$</answer>").correct
    assert not qa.verify(half, "<answer>1/3</answer>").correct
    assert not qa.verify(half, "<answer>the moon</answer>").correct


def test_a_hung_check_is_killed_from_outside_and_the_next_one_works():
    checker = MathChecker(timeout_s=3)
    try:
        assert checker.check("4", "4") == (True, "equivalent")  # worker started and warm
        t = time.perf_counter()
        ok, reason = checker.check("7", "(10^{8})!")  # sympy evaluates this factorial for minutes
        took = time.perf_counter() - t
        assert not ok and "took longer than 3 s (worker killed)" in reason
        assert 3 <= took < 5 and checker.timeouts == 1
        assert checker.check("2", "2") == (True, "equivalent")  # a fresh worker answers the next one
    finally:
        checker.close()


@pytest.mark.parametrize("line, match", [
    ("{not json", r"qa.jsonl:2: not valid JSON"),
    ('["a", "b"]', r"qa.jsonl:2: expected a JSON object"),
    ('{"answer": "1"}', r"qa.jsonl:2: key 'question' must be non-empty text"),
    ('{"question": "q", "answer": ""}', r"qa.jsonl:2: key 'answer'"),
    ('{"question": "q", "answer": "1", "difficulty": 0}', r"qa.jsonl:2: key 'difficulty' must be an integer >= 1"),
])
def test_bad_jsonl_rows_name_file_line_and_key(tmp_path, line, match):
    path = write_rows(tmp_path, [{"question": "fine", "answer": "1"}, line])
    with pytest.raises(TaskFileError, match=match):
        JsonlTask(path)


def test_jsonl_task_in_a_config_is_checked_before_any_work(tmp_path):
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(ConfigError, match=rf"config key 'task'.*{missing.name} does not exist"):
        from_dict({"task": f"jsonl:{missing}"})
    path = write_rows(tmp_path, [{"question": f"q{i}", "answer": str(i)} for i in range(30)], "ok.jsonl")
    cfg = from_dict({"task": f"jsonl:{path}", "seed_data": {"max_difficulty": 1}, "base": {"steps": 0},
                            "loop": {"max_difficulty": 1}, "eval": {"max_difficulty": 1}})
    assert cfg.task == f"jsonl:{path}"


def test_a_task_file_without_held_out_rows_at_a_difficulty_is_refused_before_any_work(tmp_path):
    rows = [{"question": f"q{i}", "answer": str(i), "difficulty": 1 + i % 2} for i in range(60)]
    task = JsonlTask(write_rows(tmp_path, rows, "probe.jsonl"))
    held_at_2 = {q for q, _ in task.rows[("heldout", 2)]}
    path = write_rows(tmp_path, [r for r in rows if r["question"] not in held_at_2], "gap.jsonl")
    base = {"task": f"jsonl:{path}", "seed_data": {"max_difficulty": 1}, "loop": {"max_difficulty": 2}}
    with pytest.raises(ConfigError, match=r"'eval.min_difficulty'..'eval.max_difficulty'.* no held-out rows at "
                                          r"difficulty 2"):
        from_dict({**base, "eval": {"max_difficulty": 2}})
    assert from_dict({**base, "eval": {"max_difficulty": 1}}).eval.max_difficulty == 1


def test_reasoning_gym_difficulty_follows_its_curriculum_and_its_scorer_verifies():
    task = get_task("reasoning_gym:basic_arithmetic")
    assert (task.min_difficulty, task.max_difficulty) == (1, 5)
    easy, hard = problem(task, 1, "heldout", 0), problem(task, 5, "heldout", 0)
    assert easy.prompt == problem(task, 1, "heldout", 0).prompt  # reproducible
    mean_len = lambda d: sum(len(p.prompt) for p in problems(task, d, "train", 20)) / 20  # noqa: E731
    assert mean_len(5) > mean_len(1)
    for p in (easy, hard):
        assert task.verify(p, f"<think>…</think><answer>{p.answer}</answer>").correct
        assert not task.verify(p, "<answer>banana</answer>").correct
    # disjoint seeds; equal prompts by chance are possible in small spaces and are what decontamination drops
    train = {p.prompt for p in problems(task, 4, "train", 30)}
    assert len(train & {p.prompt for p in problems(task, 4, "heldout", 30)}) <= 1


def test_unknown_reasoning_gym_dataset_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"no such reasoning_gym dataset.*basic_arithmetic"):
        get_task("reasoning_gym:no_such_dataset")
