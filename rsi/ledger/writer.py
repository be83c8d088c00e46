"""`StageWriter`: what `Ledger.stage` yields, the ledger's `add_*` methods plus `cost` for the stage row."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rsi.records import EvalResult, GateDecision, Label, Problem, Proposal, Reading, Sample

if TYPE_CHECKING:
    from rsi.ledger.store import Ledger


class StageWriter:
    """What `Ledger.stage` yields: the ledger's `add_*` methods plus `cost` for the stage row."""

    def __init__(self, ledger: Ledger, cycle: int, stage: str) -> None:
        self.ledger, self.cycle, self.stage = ledger, cycle, stage
        self.values: dict[str, float | int] = {}
        self.extra: dict[str, Any] = {}

    def cost(
        self,
        *,
        wall_s: float | None = None,
        cpu_s: float | None = None,
        generated_tokens: int | None = None,
        train_sequences: int | None = None,
        train_tokens: int | None = None,
        **extra: Any,
    ) -> None:
        """Set the stage's cost; later calls override earlier ones key by key.

        `wall_s`/`cpu_s` left unset default to the wall time and this process's CPU time
        (all threads, no child processes) spent inside the `with` body; token counts default
        to 0. Extra keyword values must be JSON-serialisable and land in `extra_json`.
        """
        given = dict(wall_s=wall_s, cpu_s=cpu_s, generated_tokens=generated_tokens,
                     train_sequences=train_sequences, train_tokens=train_tokens)
        self.values.update({k: v for k, v in given.items() if v is not None})
        self.extra.update(extra)

    def add_problems(self, cycle: int, problems: list[Problem]) -> None:
        self.ledger.add_problems(cycle, problems)

    def add_samples(self, cycle: int, model: str, samples: list[Sample]) -> None:
        self.ledger.add_samples(cycle, model, samples)

    def add_labels(self, cycle: int, labels: list[Label]) -> None:
        self.ledger.add_labels(cycle, labels)

    def add_proposals(self, cycle: int, proposals: list[Proposal]) -> None:
        self.ledger.add_proposals(cycle, proposals)

    def add_eval(self, cycle: int, model: str, results: list[EvalResult]) -> None:
        self.ledger.add_eval(cycle, model, results)

    def add_gate(self, cycle: int, champion: str, candidate: str, decision: GateDecision) -> None:
        self.ledger.add_gate(cycle, champion, candidate, decision)

    def add_metrics(self, cycle: int, stage: str, metrics: dict) -> None:
        self.ledger.add_metrics(cycle, stage, metrics)

    def add_readings(self, cycle: int, readings: list[Reading]) -> None:
        self.ledger.add_readings(cycle, readings)
