"""Typed records that travel between the loop's stages.

Stages are functions over these records; only the loop (and the ledger) hold state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class Problem:
    """One problem of a task at a difficulty, reproducible from (task, split, difficulty, seed)."""

    task: str
    difficulty: int
    split: str  # "train" (may be labelled or self-labelled) | "heldout" (evaluation only)
    seed: int
    prompt: str
    answer: str  # ground truth; the vote labeler never reads it (audit only)
    source: str = "generated"  # provenance: "generated" | "human" | a checkpoint name

    @property
    def id(self) -> str:
        return f"{self.task}/{self.split}/{self.difficulty}/{self.seed}"


@dataclass(frozen=True)
class Verdict:
    """What a verifier says about one completion."""

    reward: float
    correct: bool
    reason: str = ""
    error: bool = False  # the verifier raised: scored 0, the reason says what it raised (rsi.tasks.guard)


@dataclass(frozen=True)
class Sample:
    """One completion the policy generated for a problem."""

    problem_id: str
    index: int  # which of the samples for this problem (member k's are k*n .. k*n+n-1)
    completion: str
    n_tokens: int
    model: str = ""  # the checkpoint that wrote it (the champion or a friend)


@dataclass(frozen=True)
class Proposal:
    """A problem the model wrote in self-play (`propose.by: model`), as the executor judged it."""

    proposer: str  # the checkpoint that wrote it
    difficulty: int  # the level it was asked for
    index: int  # which of the proposals for that level
    prompt: str  # the proposer prompt
    completion: str
    n_tokens: int
    finished: bool  # ended with an end-of-sequence token within the budget
    valid: bool  # kept by the executor: it became the problems in `problem_ids`
    reason: str  # why it was kept or dropped
    problem_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Label:
    """A training target chosen by a labeler for one sample (kept or not, with the reason)."""

    problem_id: str
    sample_index: int
    answer: str  # the target the model will be trained on
    kept: bool
    reason: str
    agreement: float = 1.0  # vote share for `vote`, 1.0/0.0 for `verifier`
    audit_correct: bool | None = None  # true correctness, recorded for audit, never trained on


@dataclass(frozen=True)
class Example:
    """A (prompt, answer) pair the train stage consumes."""

    prompt: str
    answer: str
    difficulty: int
    origin: str  # "seed" (ground truth) | "self" (produced and checked by the loop) | "human"
    prefix: str | None = None  # None: a problem; else a proposer prompt, its answer starting with this


@dataclass(frozen=True)
class EvalResult:
    """Held-out accuracy of one model at one difficulty, with a 95 % Wilson interval."""

    model: str
    difficulty: int
    n: int
    correct: int
    lo: float
    hi: float
    per_problem: tuple[bool, ...] = field(default=(), repr=False)
    answers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # (problem id, completion) each

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0


@dataclass(frozen=True)
class GateDecision:
    """Promote the candidate or roll back to the champion, and why."""

    promote: bool
    reason: str
    gain: float  # mean paired accuracy difference, candidate - champion
    gain_lo: float  # lower confidence bound of that difference
    worst_regression: float  # largest accuracy drop at any difficulty <= champion frontier


VETO = "rolled back by a reward-hacking alert"  # how a vetoed promotion's reason starts


def veto(decision: GateDecision, alert: str) -> GateDecision:
    """A promotion turned into a rollback by a monitor's alert, saying what it overrode."""
    return replace(decision, promote=False, reason=(
        f"{VETO} although the gate would have promoted it (gain {decision.gain:+.1%} above the frontier, "
        f"lower bound {decision.gain_lo:+.1%}): {alert}. A person can overrule it: rsi review RUN --approve --why ..."))


def is_veto(reason: str) -> bool:
    return reason.startswith(VETO)



@dataclass(frozen=True)
class ProposeFacts:
    """What the propose stage found, kept as its ledger metrics and read back typed
    (`rsi.run.context.propose_facts`): the decontamination monitor reads it."""

    frontier: int
    difficulties: list[int]
    problems: int  # recorded, after decontamination
    checked: int  # proposed problems checked against the held-out set
    contaminated: dict[str, int]  # drops by kind ("exact", "near", ...)
    contaminated_ids: dict[str, str]  # problem id -> kind
    chance_contaminated: float  # the share a same-task problem overlaps by chance
    chance_spread: float
    proposals: int | None = None  # self-play only: proposals written, valid, dropped by reason
    valid: int | None = None
    dropped: dict[str, int] | None = None

    def metrics(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None or k not in _OPTIONAL}

    @classmethod
    def read(cls, m: dict) -> ProposeFacts:
        """From a propose stage's metrics, those of runs recorded before a key existed included."""
        return cls(m["frontier"], m.get("difficulties", []), m["problems"], m.get("checked", m["problems"]),
                   m.get("contaminated", {}), m.get("contaminated_ids", {}), m.get("chance_contaminated", 0.0),
                   m.get("chance_spread", 0.0), m.get("proposals"), m.get("valid"), m.get("dropped"))


_OPTIONAL = ("proposals", "valid", "dropped")


@dataclass(frozen=True)
class TrainFacts:
    """What the train stage did, kept as its ledger metrics and read back typed
    (`rsi.run.context.train_facts`): the evaluate and gate stages read `skipped`."""

    new_examples: int
    replay_examples: int
    final_loss: float | None
    friends_final_loss: list[float]
    skipped: str | None  # why no candidate was trained, or None
    checkpoints: dict[str, str]  # checkpoint name -> weights_sha256

    def metrics(self) -> dict:
        return asdict(self)

    @classmethod
    def read(cls, m: dict) -> TrainFacts:
        """From a train stage's metrics, those of runs recorded before a key existed included."""
        return cls(m.get("new_examples", 0), m.get("replay_examples", 0), m.get("final_loss"),
                   m.get("friends_final_loss", []), m.get("skipped"), m.get("checkpoints", {}))


@dataclass(frozen=True)
class Reading:
    """One integrity monitor's reading for a cycle (`rsi.monitors`): its figures and whether they alert."""

    monitor: str  # one of rsi.monitors.MONITORS
    value: dict  # the monitor's figures (JSON-serialisable)
    alert: bool
    message: str  # one line a person can act on


@dataclass(frozen=True)
class RewardStats:
    """One reward component over a GRPO step's samples."""

    mean: float
    std: float
    errors: int  # samples it raised on (scored 0)
    first_error: str | None = None  # the first exception's text


@dataclass(frozen=True)
class AnswerChecks:
    """What the task's verifier and format check say of a GRPO step's sampled answers, next to
    their training reward (`rsi.monitors.hacking.step_stats`), for the reward-hacking monitor."""

    verified_mean: float
    well_formed_mean: float
    unverified_reward_share: float  # share of the (positive) reward paid to answers the verifier rejects
    malformed_reward_share: float  # ... to answers the format check rejects
    answer_length_ratio: float | None  # mean length against the reference answer's; None in older ledgers


@dataclass(frozen=True)
class GrpoStep:
    """One GRPO step's statistics (`rsi.learn.grpo.grpo_train`), kept as the grpo stage's metrics
    (`{"steps": [...]}`, flat keys as `metrics()` writes them) and read back typed
    (`rsi.run.context.grpo_steps`) by the monitors, the report and the train stage."""

    step: int
    reward_mean: float
    reward_std: float = 0.0
    zero_variance_groups: float = 0.0  # share of groups whose rewards were all equal (no advantage)
    answer_tokens_mean: float = 0.0
    samples: int = 0
    generated_tokens: int = 0
    rewards: dict[str, RewardStats] = field(default_factory=dict)  # per reward component
    checks: AnswerChecks | None = None
    loss: float | None = None  # None: the step did not update (`skipped` says why)
    kl: float | None = None
    clip_fraction: float | None = None
    trained_rows: int | None = None
    skipped: str | None = None
    member: int = 0  # who trained: the candidate (0) or a friend

    def metrics(self) -> dict:
        m: dict = {"member": self.member, "step": self.step, "reward_mean": self.reward_mean,
                   "reward_std": self.reward_std, "zero_variance_groups": self.zero_variance_groups,
                   "answer_tokens_mean": self.answer_tokens_mean, "samples": self.samples,
                   "generated_tokens": self.generated_tokens}
        for name, r in self.rewards.items():
            m |= {f"reward/{name}/mean": r.mean, f"reward/{name}/std": r.std, f"reward/{name}/errors": r.errors}
            if r.first_error is not None:
                m[f"reward/{name}/first_error"] = r.first_error
        if self.checks is not None:
            m |= {k: v for k, v in asdict(self.checks).items() if v is not None}
        m |= {"loss": self.loss, "kl": self.kl, "clip_fraction": self.clip_fraction}
        m |= {k: v for k in ("trained_rows", "skipped") if (v := getattr(self, k)) is not None}
        return m

    @classmethod
    def read(cls, m: dict) -> GrpoStep:
        """From one step of a grpo stage's metrics, those of runs recorded before a key existed included."""
        names = [k[len("reward/"):-len("/mean")] for k in m if k.startswith("reward/") and k.endswith("/mean")]
        rewards = {n: RewardStats(m[f"reward/{n}/mean"], m[f"reward/{n}/std"], m.get(f"reward/{n}/errors", 0),
                                  m.get(f"reward/{n}/first_error")) for n in names}
        checks = None if "verified_mean" not in m else AnswerChecks(
            m["verified_mean"], m["well_formed_mean"], m["unverified_reward_share"], m["malformed_reward_share"],
            m.get("answer_length_ratio"))
        return cls(m["step"], m["reward_mean"], m.get("reward_std", 0.0), m.get("zero_variance_groups", 0.0),
                   m.get("answer_tokens_mean", 0.0), m.get("samples", 0), m.get("generated_tokens", 0), rewards,
                   checks, m.get("loss"), m.get("kl"), m.get("clip_fraction"), m.get("trained_rows"),
                   m.get("skipped"), m.get("member", 0))


@dataclass(frozen=True)
class ProposerStep:
    """One update of the self-play proposer on its scored proposals (`rsi.learn.grpo.recorded_update`),
    kept as the proposer stage's metrics; the first step also carries the proposals' figures."""

    step: int
    loss: float | None = None
    rows: int | None = None
    clip_fraction: float | None = None
    ratio_mean: float | None = None
    skipped: str | None = None  # why no update ran (step 0)
    reward_mean: float | None = None  # first step: the proposals' mean learnability reward
    learnable: int | None = None  # first step: proposals with a reward above 0
    proposals: int | None = None  # first step: proposals scored
    member: int = 0

    def metrics(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def read(cls, m: dict) -> ProposerStep:
        return cls(**{k: m[k] for k in cls.__dataclass_fields__ if k in m})
