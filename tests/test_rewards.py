"""Reward components: built-ins, TRL-signature functions from a file, and their failure modes."""

import pytest

from rsi.learn.rewards import RewardError, load_reward, score
from rsi.tasks import get_task, problem
from rsi.tasks.base import answer_text as extract_answer

SORT = get_task("sort")
P = [problem(SORT, 3, "train", i) for i in range(3)]


def test_accuracy_reads_the_answer_tag_or_the_whole_completion():
    right, wrong = P[0].answer, "999"
    comps = [right, f"<think>hm</think><answer>{right}</answer>", f"<answer>{wrong}</answer>"]
    s = score([load_reward("accuracy", 1.0)], comps, [P[0]] * 3)
    assert s.components["accuracy"] == [1.0, 1.0, 0.0]
    assert extract_answer("<answer>1</answer> then <answer>2</answer>") == "2"


def test_format_reward_follows_the_r1_template():
    comps = ["<think>a\nb</think>\n<answer>12</answer>\n", "<answer>12</answer>",
             "<think>x</think><answer>1</answer>tail"]
    assert score([load_reward("format", 1.0)], comps, [P[0]] * 3).components["format"] == [1.0, 0.0, 0.0]


def test_tags_reward_gives_a_quarter_per_tag_used_once():
    comps = ["<think>a</think><answer>1</answer>", "<answer>12</answer>", "<think><think>", "plain"]
    assert score([load_reward("tags", 1.0)], comps, [P[0]] * 4).components["tags"] == [1.0, 0.5, 0.0, 0.0]


def test_weighted_total_of_builtin_and_user_rewards(tmp_path):
    f = tmp_path / "my_rewards.py"
    f.write_text(
        "def length_penalty(completions, answer, **kwargs):\n"
        "    return [-abs(len(c) - len(a)) for c, a in zip(completions, answer)]\n"
    )
    rewards = [load_reward("accuracy", 1.0), load_reward(f"{f}:length_penalty", 0.5)]
    comps = [P[0].answer, P[1].answer + "00"]
    s = score(rewards, comps, P[:2])
    assert s.components[f"{f}:length_penalty"] == [0.0, -2.0]
    assert s.total == [1.0, 0.0 + 0.5 * -2.0]  # the second answer is wrong: accuracy 0
    assert s.errors == {"accuracy": 0, f"{f}:length_penalty": 0}


def test_a_reward_that_raises_on_one_sample_scores_it_zero_and_counts_it(tmp_path):
    f = tmp_path / "fragile.py"
    f.write_text(
        "def picky(completions, **kwargs):\n"
        "    return [1.0 / (len(c) - 2) for c in completions]\n"  # raises on 2-character completions
    )
    s = score([load_reward(f"{f}:picky", 1.0)], ["abc", "ab", "abcd"], P)
    assert s.components[f"{f}:picky"] == [1.0, 0.0, 0.5]
    assert s.errors[f"{f}:picky"] == 1


def test_wrong_length_or_type_is_a_clear_error(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text("def short(completions, **kw):\n    return [1.0]\n\ndef words(completions, **kw):\n"
                 "    return ['yes'] * len(completions)\n")
    with pytest.raises(RewardError, match=r"bad\.py:short' returned 1 values for 3 completions"):
        score([load_reward(f"{f}:short", 1.0)], ["a", "b", "c"], P)
    with pytest.raises(RewardError, match="returned 'yes'"):
        score([load_reward(f"{f}:words", 1.0)], ["a"], P[:1])


def test_loading_errors_name_the_file_and_what_is_wrong(tmp_path):
    with pytest.raises(RewardError, match="unknown reward 'accuracyy'; known: accuracy, format, tags, or an installed"):
        load_reward("accuracyy", 1.0)
    with pytest.raises(RewardError, match="does not exist"):
        load_reward(f"{tmp_path}/nope.py:f", 1.0)
    f = tmp_path / "r.py"
    f.write_text("def one(completions, **kw):\n    return [0.0] * len(completions)\n")
    with pytest.raises(RewardError, match=r"r\.py defines no 'two'; defined in it: one"):
        load_reward(f"{f}:two", 1.0)
    g = tmp_path / "broken.py"
    g.write_text("import no_such_module_here\n")
    with pytest.raises(RewardError, match=r"broken\.py: importing it raised ModuleNotFoundError"):
        load_reward(f"{g}:f", 1.0)


def test_an_answer_cut_off_before_its_closing_tag_counts_but_not_a_sprayed_one():
    right, wrong = P[0].answer, "999"
    assert extract_answer(f"<answer>{right}</ans") == right  # the token budget ran out in the closing tag
    assert extract_answer(f"<think>x</think><answer> {right} ") == right
    assert extract_answer(f"<answer>{wrong}\n<answer>{right}") == f"{wrong}\n<answer>{right}"  # no pick of the lot
    comps = [f"<answer>{right}</an", f"<answer>{wrong}\n<answer>{right}", f"<answer>{right}\nbecause"]
    assert score([load_reward("accuracy", 1.0)], comps, [P[0]] * 3).components["accuracy"] == [1.0, 0.0, 0.0]
