from rsi.config import FilterConfig, LabelConfig
from rsi.monitors import HeldoutIndex
from rsi.records import Sample
from rsi.stages.label import label_samples
from rsi.tasks import get_task, problem

TASK = get_task("addition")
CLEAN = lambda text: None  # noqa: E731  no held-out overlap


def samples_for(p, answers):
    return [Sample(p.id, i, a, len(a) + 1) for i, a in enumerate(answers)]


def test_verifier_keeps_correct_and_dedups():
    p = problem(TASK, 4, "train", 7)
    wrong = "9" * 4
    labels = label_samples(TASK, [p], samples_for(p, [p.answer, wrong, p.answer, "x1"]),
                           LabelConfig(labeler="verifier"), FilterConfig(), CLEAN)
    assert [lab.kept for lab in labels] == [True, False, False, False]
    assert labels[1].reason.startswith("rejected by verifier")
    assert labels[2].reason == "duplicate of a kept sample"
    assert labels[3].reason.startswith("malformed")
    assert labels[0].audit_correct is True and labels[1].audit_correct is False


def test_vote_uses_majority_not_ground_truth_and_audits_it():
    p = problem(TASK, 4, "train", 8)
    wrong = str(int(p.answer[::-1]) + 1)[::-1].ljust(len(p.answer), "0")[: len(p.answer)]
    assert wrong != p.answer
    labels = label_samples(TASK, [p], samples_for(p, [wrong, wrong, wrong, p.answer, p.answer]),
                           LabelConfig(labeler="vote", vote_threshold=0.5), FilterConfig(dedup=False), CLEAN)
    kept = [lab for lab in labels if lab.kept]
    assert len(kept) == 3 and all(lab.answer == wrong for lab in kept)
    assert all(lab.audit_correct is False for lab in kept)  # the majority was wrong: the audit says so
    assert kept[0].agreement == 0.6


def test_vote_below_threshold_keeps_nothing():
    p = problem(TASK, 3, "train", 9)
    labels = label_samples(TASK, [p], samples_for(p, ["111", "222", "333", "444"]),
                           LabelConfig(labeler="vote", vote_threshold=0.5), FilterConfig(), CLEAN)
    assert not any(lab.kept for lab in labels)
    assert labels[0].reason.startswith("no majority")


def test_decontamination_drops_heldout_prompts():
    p = problem(TASK, 2, "train", 1)
    index = HeldoutIndex([p.prompt], n=8, overlap=0.5)
    labels = label_samples(TASK, [p], samples_for(p, [p.answer]), LabelConfig(), FilterConfig(), index.hit)
    assert not labels[0].kept and labels[0].reason == "contaminated: equals a held-out prompt"
    kept = label_samples(TASK, [p], samples_for(p, [p.answer]), LabelConfig(), FilterConfig(decontaminate=False),
                         index.hit)
    assert kept[0].kept


def test_a_kept_program_is_trained_on_as_it_was_verified(sandbox):
    """An induction answer is a function body whose first line is indented (" y = x"): the label's
    answer keeps that indentation, so the audit (and training) see the program the verifier passed.
    Stripping it made every kept induction label a program that no longer parses."""
    task = get_task("code_io_induction")
    p = problem(task, 2, "train", 3)
    labels = label_samples(task, [p], samples_for(p, [p.answer + "\n"]), LabelConfig(labeler="verifier"),
                           FilterConfig(), CLEAN)
    assert p.answer.startswith(" ") and labels[0].kept and labels[0].answer == p.answer
    assert labels[0].audit_correct is True
