"""Self-play: parsing and checking proposals, learnability rewards, the proposer's update, the ledger."""

import random

import pytest
import torch

from rsi.config import GrpoConfig, ModelConfig, ProposeConfig, SeedDataConfig, load_config
from rsi.engine.forward import logprobs
from rsi.engine.model import build_tiny_model
from rsi.engine.tokenizer import build_char_tokenizer, encode_answer, encode_prompt
from rsi.errors import ConfigError, LedgerError
from rsi.learn.data import seed_stream
from rsi.learn.grpo import group_normalised, recorded_update
from rsi.ledger import Ledger
from rsi.records import Label, Problem, Proposal
from rsi.resolve import load
from rsi.tasks import get_task
from rsi.tasks.code_io import pose, program_input
from rsi.tasks.selfplay import check, learnability, parse, proposal_rewards, proposer_example, solve_rates

CODE = get_task("code_io")
TINY_FORMAT = "def f(x):\n y = x\n y = y * 3\n return y\n#f(4)"


def test_parse_reads_the_tiny_format_and_a_chat_models_fenced_code():
    assert parse(TINY_FORMAT) == ("def f(x):\n y = x\n y = y * 3\n return y", 4)
    chat = "Sure!\n```python\ndef f(x):\n    y = x + 2   \n\n    return y * 2\n```\nTry it: print(f(-7))\n"
    assert parse(chat) == ("def f(x):\n    y = x + 2\n    return y * 2", -7)
    assert parse("<think>hmm</think><answer>" + TINY_FORMAT + "</answer>") == parse(TINY_FORMAT)


@pytest.mark.parametrize("text, reason", [
    ("y = 3", "malformed: no `def f(x):`"),
    ("def f(x):\n return x\n", "malformed: no input"),
    ("def f(x):\n y = x\n#f(2)", "malformed: the function has no return"),
    ("def f(x):\n return x\n#f(1000000000000)", "too large: input"),
])
def test_parse_says_why_a_proposal_is_malformed(text, reason):
    assert parse(text).startswith(reason)


def test_proposer_examples_from_the_generator_parse_and_pose_problems():
    rng = random.Random(0)
    for d in (1, 4, 8):
        source, x = parse(proposer_example(rng, d))
        prompt, answer = pose("abduction", source, x, 7)
        assert program_input(Problem("code_io", d, "train", 0, prompt, answer)) == (source, x)
        prompt, answer = pose("deduction", source, x, 7)
        assert program_input(Problem("code_io", d, "train", 0, prompt, answer)) == (source, x)


def test_check_keeps_valid_new_deterministic_programs_only(sandbox):
    earlier = ("def f(x):\n y = x\n y = y + 1\n return y", 2)
    heldout = ("def f(x):\n y = x\n y = y - 1\n return y", 5)
    texts = [
        TINY_FORMAT,
        TINY_FORMAT,  # the same again in one batch
        earlier[0] + "\n#f(2)",
        heldout[0] + "\n#f(5)",
        heldout[0] + "\n#f(6)",  # the held-out program with another input is a new problem
        "def f(x):\n y = hash(str(x)) % 1000003\n return y\n#f(3)",  # string hashes differ per process
        "def f(x):\n while True:\n  x = x + 1\n return x\n#f(1)",
        "def f(x):\n return x > 0\n#f(1)",
        "def f(x):\n return x ** 40\n#f(9)",
        "def f(x):\n return 1 // 0\n#f(1)",
        "def f(x):\n return x +\n#f(1)",
        "def f(x):\n return x & 3\n#f(1)",  # '&' is not in the tiny model's alphabet
    ]
    seen = {earlier}
    out = check(texts, seen, {heldout}, CODE.alphabet, sandbox)
    categories = [c.reason.split(":")[0] for c in out]
    assert categories == ["kept", "duplicate", "duplicate", "contaminated", "kept", "impure",
                          "over the limits", "not an integer", "too large", "raises", "malformed", "unreadable"]
    assert (out[0].x, out[0].y) == (4, 12) and (out[4].x, out[4].y) == (6, 5)
    assert ("def f(x):\n y = x\n y = y * 3\n return y", 4) in seen  # kept pairs are remembered
    assert check(["def f(x):\n return x & 3\n#f(1)"], set(), set(), None, sandbox)[0].y == 1  # no alphabet: kept


def test_a_proposed_abduction_is_verified_from_its_prompt(sandbox):
    """Proposed problems are not reproducible from their seed: the verifier reads the program in the prompt."""
    source = "def f(x):\n    return x * x - 4"
    prompt, answer = pose("abduction", source, 3, 5)
    p = Problem("code_io", 2, "train", 123, prompt, answer, source="cycle-0001")
    verdicts = CODE.verify_many([(p, "3"), (p, "-3"), (p, "2")])
    assert [v.correct for v in verdicts] == [True, True, False]


def test_learnability_rewards_problems_solved_sometimes():
    assert [learnability(r) for r in (None, 0.0, 0.25, 1.0)] == [0.0, 0.0, 0.75, 0.0]
    problems = [Problem("code_io", 1, "train", i, f"p{i}", "1") for i in range(3)]
    labels = [Label(problems[i].id, j, "1", ok, "", audit_correct=ok)
              for i, oks in enumerate([(True, False, False, False), (True,) * 4, (False,) * 4])
              for j, ok in enumerate(oks)]
    rates = solve_rates(problems, labels)
    assert rates == {problems[0].id: 0.25, problems[1].id: 1.0, problems[2].id: 0.0}
    proposals = [Proposal("cycle-0000", 1, i, "#propose 1\n", "", 1, True, valid, "", ids) for i, (valid, ids) in
                 enumerate([(True, (problems[0].id, problems[1].id)), (True, (problems[2].id,)),
                            (False, ()), (True, (problems[0].id,))])]
    assert proposal_rewards(proposals, rates) == [pytest.approx(1 - 0.625), 0.0, 0.0, 0.75]


def test_group_normalised_handles_groups_of_any_size():
    adv = group_normalised([1.0, 0.0, 0.5, 0.5, 0.5, 2.0], [1, 1, 2, 2, 2, 3], "dr_grpo")
    assert adv.tolist() == [0.5, -0.5, 0.0, 0.0, 0.0, 0.0]  # a group of one carries no signal


def test_recorded_update_moves_probability_towards_rewarded_proposals():
    tok = build_char_tokenizer(CODE.alphabet)
    model = build_tiny_model(ModelConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64), tok, seed=0)
    prompt, good, bad = "#propose 1\n", TINY_FORMAT, "def f(x):\n return x\n#f(1)"
    texts = [good, bad] * 4

    def logps():
        with torch.no_grad():
            lp, _ = logprobs(model, [encode_prompt(tok, prompt)] * 2,
                                        [encode_answer(tok, good), encode_answer(tok, bad)], tok.pad_token_id)
        return lp.sum(1)

    before = logps()
    adv = group_normalised([1.0, 0.0] * 4, [1] * 8, "grpo")
    logs = recorded_update(model, tok, [prompt] * 8, [(t, True) for t in texts], adv,
                           GrpoConfig(lr=1e-2), steps=6, batch_size=8, seed=0)
    after = logps()
    assert after[0] > before[0] + 1 and after[1] < before[1] - 1, (before, after)
    assert logs[0].ratio_mean == pytest.approx(1.0, abs=1e-4)  # the first update is on-policy
    assert recorded_update(model, tok, [prompt], [(good, True)], torch.zeros(1), GrpoConfig(), 3, 8, 0)[0].skipped


def test_seed_data_teaches_the_proposer_format_at_its_share():
    draw = seed_stream(CODE, SeedDataConfig(max_difficulty=3), ProposeConfig(by="model", seed_share=0.3))
    rng = random.Random(0)
    examples = [draw(rng) for _ in range(2000)]
    proposals = [e for e in examples if e.prompt.startswith("#propose ")]
    assert 0.25 < len(proposals) / len(examples) < 0.35
    assert all(e.prompt == f"#propose {e.difficulty}\n" and not isinstance(parse(e.answer), str) for e in proposals)
    plain = seed_stream(CODE, SeedDataConfig(max_difficulty=3), ProposeConfig(seed_share=0.3))  # by: task
    assert not any(plain(rng).prompt.startswith("#propose") for _ in range(200))


def test_config_refuses_self_play_on_a_task_without_programs():
    with pytest.raises(ConfigError, match="propose.by"):
        load(None, ["propose.by=model"])  # the default task is sort: checked where the task is resolved
    with pytest.raises(ConfigError, match="propose.prompt"):
        load_config("selfplay", ["propose.prompt=#propose {level}"])
    assert load_config("selfplay", []).propose.by == "model"


def test_ledger_keeps_proposals_in_their_stage_transaction(tmp_path):
    path = tmp_path / "ledger.sqlite"
    q = Proposal("cycle-0002", 3, 0, "#propose 3\n", TINY_FORMAT, 40, True, True, "kept: f(4) = 12",
                 ("code_io/train/3/501000000",))
    with Ledger(path) as ledger:
        assert ledger.proposals() == []  # no table until the first proposal
        with pytest.raises(RuntimeError), ledger.stage(3, "propose"):
            ledger.add_proposals(3, [q])
            raise RuntimeError("killed mid-stage")
        assert ledger.proposals() == []  # rolled back with the stage, table and all
        with ledger.stage(3, "propose"):
            ledger.add_proposals(3, [q])
        assert ledger.proposals(3) == [q] and ledger.proposals(2) == []
        with pytest.raises(LedgerError, match="already in cycle 3"):
            ledger.add_proposals(3, [q])
    with Ledger(path, create=False) as ledger:
        assert ledger.proposals() == [q]


@pytest.mark.parametrize("body, why", [
    (" import time\n return time.localtime().tm_hour", "Import"),
    (" return len(open('/proc/sys/kernel/random/boot_id').read())", "'len'"),
    (" return __import__('time').time_ns() % 7", "Attribute"),
    (" return __import__('time')", "'__import__'"),
    (" y = ().__class__\n return 1", "Attribute"),
    (" return hash(x)", "'hash'"),
    (" return id(x) % 2", "'id'"),
    (" y = [x]\n return y[0]", "List"),
    (" return int('7')", "str constant"),
    (" return x + 0.5", "float constant"),
    (" global z\n return x", "Global"),
    (" return (lambda: x)()", "(Lambda)"),
    (" return z", "'z'"),
    (" def g(y):\n  return y\n return x", "FunctionDef"),
])
def test_a_proposal_that_reads_the_world_is_impure(sandbox, body, why):
    out = check([f"def f(x):\n{body}\n#f(3)"], set(), set(), None, sandbox)[0]
    assert not out.valid and out.reason.startswith("impure:") and why in out.reason, out.reason


def test_generated_and_widened_programs_are_pure(sandbox):
    from rsi.tasks.programs import impurity, random_program

    rng = random.Random(1)
    assert all(impurity(random_program(rng, d)) is None for d in range(1, 13) for _ in range(40))
    src = ("def f(x):\n a, b = divmod(abs(x), 7)\n while a > 0:\n  a = a // 2\n  b += 1\n"
           " return max(b, pow(2, 3)) if b else -x")
    out = check([src + "\n#f(100)"], set(), set(), None, sandbox)[0]
    assert out.valid and out.y == 8


def test_a_check_that_raises_drops_only_that_proposal(sandbox, monkeypatch):
    import rsi.tasks.selfplay as sp

    real = sp._value
    # f(7) = 77; the run's random token is taken out first, for its hex may hold "77" too
    monkeypatch.setattr(sp, "_value", lambda ex, token: (_ for _ in ()).throw(OverflowError("boom"))
                        if "77" in ex.stdout.replace(token, "") else real(ex, token))
    out = check(["def f(x):\n return x * 11\n#f(7)", TINY_FORMAT], set(), set(), None, sandbox)
    assert out[0].reason == "verifier error: OverflowError: boom" and out[1].valid
