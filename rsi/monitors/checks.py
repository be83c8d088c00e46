"""The decontamination, label-audit and diversity monitors: functions from a cycle's records to a `Reading`.

- `decontamination`: how many problems (propose stage) and accepted samples (label stage) were
  dropped for overlapping a held-out set, by kind (`exact`, `ngram`), against what chance predicts:
  for problems, the mean share of the same problems that overlap control sets drawn like the
  held-out set from items no run evaluates (`rsi.stages.monitoring.chance_overlap`); for samples, the
  share whose problem's true answer overlaps it. They are dropped either way. A procedural task
  whose problem space is small meets its own held-out set by chance (code_io at difficulty 1-3:
  about 40 %), and a proposer that favours common items meets it more often still; neither is
  leakage. The monitor alerts when either share exceeds its chance share by more than
  `monitors.max_contaminated` and than three standard deviations of the problems' share over the
  control sets: the generator or the model is reproducing evaluation items more often than unseen
  ones.
- `label_audit`: the true accuracy of the labels a labeler kept without reading the ground truth
  (`vote`), from the audit column. Below `monitors.label_floor` the cycle's labels are not used.
- `diversity`: distinct 2-grams and unique share of the cycle's problems and of its answers (one
  sample per problem), each relative to a reference of the same size: the task's own problems at
  the same difficulties, and the problems' true answers. A ratio below `monitors.min_diversity` is
  mode collapse.
- `verifier`: samples the task's verifier raised on this cycle, by stage (`rsi.tasks.guard`: each
  scored 0 and the run went on). Graders are meant to be total, so any is a verifier bug or an
  answer built to break one: it alerts on the first, saying where and what was raised.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rsi.config import MonitorsConfig
from rsi.monitors.text import distinct_n, unique_share
from rsi.records import Label, Reading


def decontamination(dropped_problems: dict[str, int], checked_problems: int,
                    dropped_samples: dict[str, int], checked_samples: int, cfg: MonitorsConfig,
                    chance: tuple[float, float] = (0.0, 0.0), spread: float = 0.0) -> Reading:
    """`chance`: the shares of (problems, true answers) that chance predicts overlap the held-out
    set; `spread`: the problems' share's standard deviation over control sets. Excess within three
    spreads is how much the held-out set's own draw varies, not leakage."""
    n_p, n_s = sum(dropped_problems.values()), sum(dropped_samples.values())
    p_share, s_share = n_p / max(1, checked_problems), n_s / max(1, checked_samples)
    excess = max(p_share - chance[0], s_share - chance[1])
    value = {"problems_checked": checked_problems, "problems_dropped": dropped_problems,
             "samples_checked": checked_samples, "samples_dropped": dropped_samples,
             "dropped_share": max(p_share, s_share), "chance_share": list(chance), "chance_spread": spread,
             "excess_over_chance": excess}
    kinds = Counter(dropped_problems) + Counter(dropped_samples)
    if not kinds:
        return Reading("decontamination", value, False,
                       f"clean: {checked_problems} problems and {checked_samples} accepted samples checked")
    alert = excess > max(cfg.max_contaminated, 3 * spread)
    return Reading("decontamination", value, alert,
                   f"dropped {n_p}/{checked_problems} problems ({p_share:.0%}; chance {chance[0]:.0%}) and "
                   f"{n_s}/{checked_samples} accepted samples ({s_share:.0%}; chance {chance[1]:.0%}) that overlap "
                   f"a held-out set ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})"
                   + (f": {excess:.0%} above chance, more than monitors.max_contaminated"
                      + (f" and 3 x the control sets' spread ({spread:.1%})" if spread else "") if alert else
                      ", within chance"))


def label_audit(labels: Sequence[Label], labeler: str, cfg: MonitorsConfig,
                people: dict[str, int] | None = None) -> Reading:
    """Accuracy of the kept labels against the ground truth (the task's verifier, where there is one;
    else people's verdicts on earlier cycles' kept labels, `people`: {"judged", "wrong"}). `alert`
    means below the floor: the caller then keeps none of them."""
    kept = [lab for lab in labels if lab.kept]
    audited = [lab.audit_correct for lab in kept if lab.audit_correct is not None]
    accuracy = sum(audited) / len(audited) if audited else None
    value = {"labeler": labeler, "kept": len(kept), "audited": len(audited), "accuracy": accuracy,
             "floor": cfg.label_floor}
    said = ""
    if people and people["judged"]:
        value["people"] = people
        said = f"; people found {people['wrong']} of {people['judged']} earlier kept labels they judged wrong"
        if accuracy is None and kept:
            accuracy = value["accuracy"] = 1 - people["wrong"] / people["judged"]
    if labeler == "verifier":
        return Reading("label_audit", value, False, "labels come from the task's verifier (ground truth)" + said)
    if accuracy is None:
        return Reading("label_audit", value, False, "nothing to audit: no label was kept" + said)
    if cfg.label_floor is not None and accuracy < cfg.label_floor:
        return Reading("label_audit", value, True,
                       f"kept labels are {accuracy:.0%} correct, below the floor {cfg.label_floor:.0%}: "
                       f"this cycle's {len(kept)} labels are not added to the training data" + said)
    return Reading("label_audit", value, False, f"kept labels are {accuracy:.0%} correct" + said)


def diversity(problems: Sequence[str], reference_problems: Sequence[str], answers: Sequence[str],
              true_answers: Sequence[str], cfg: MonitorsConfig) -> Reading:
    value, low = {}, []
    for kind, texts, ref in (("problems", problems, reference_problems), ("answers", answers, true_answers)):
        stats = {"n": len(texts), "distinct_2": distinct_n(texts, 2), "unique": unique_share(texts),
                 "reference_distinct_2": distinct_n(ref, 2), "reference_unique": unique_share(ref)}
        stats["ratio"] = min(_ratio(stats["distinct_2"], stats["reference_distinct_2"]),
                             _ratio(stats["unique"], stats["reference_unique"]))
        value[kind] = stats
        if texts and stats["ratio"] < cfg.min_diversity:
            low.append(f"{kind} {stats['ratio']:.2f}x")
    if low:
        return Reading("diversity", value, True, f"mode collapse: diversity of {', '.join(low)} the reference's, "
                                                 f"below {cfg.min_diversity}")
    return Reading("diversity", value, False, f"problems {value['problems']['ratio']:.2f}x, answers "
                                              f"{value['answers']['ratio']:.2f}x the reference's diversity")


def _ratio(x: float, reference: float) -> float:
    return min(1.0, x / reference) if reference else 1.0


def verifier(errors: dict[str, int], first: str) -> Reading:
    """`errors`: per stage, the samples the verifier raised on (each scored 0), and per GRPO reward
    function (`reward NAME`) the samples it raised on; `first`: the first reason."""
    total = sum(errors.values())
    where = ", ".join(f"{stage} {n}" for stage, n in errors.items() if n)
    rewards = sum(k.startswith("reward ") for k in errors)
    who = {0: "the verifier", len(errors): "a reward function"}.get(rewards, "the verifier and a reward function")
    message = (f"{who} raised on {total} sample(s) this cycle ({where}); each scored 0 and the run went on. "
               f"First: {first}. Fix the task's verifier or the reward, or look at what the model wrote") if total \
        else "the verifier and every reward returned a value for every sample"
    return Reading("verifier", {"errors": errors, "first": first}, total > 0, message)
