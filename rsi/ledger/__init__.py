"""The ledger: an append-only SQLite store (WAL mode) of everything a run did.

One file per run, `runs/<name>/ledger.sqlite`. Every stage of a cycle writes its rows inside
`Ledger.stage(cycle, stage)`, one transaction that also inserts the stage's completion row in
`stages`: either all of a stage's problems, samples, labels, evaluations, gate decision, metrics
and cost are in the file, or none are. A killed run therefore resumes at the first stage that
`is_done` reports missing, with nothing lost and nothing duplicated.

Rows are never updated or deleted (but for people's problems withdrawn before any stage used
them: `Ledger.withdraw_problems`). Unique keys (a problem id, a sample's (problem, index, cycle),
a completed stage, ...) raise `LedgerError` on a second insert instead of being ignored, because
the loop never writes the same thing twice; a duplicate is a bug worth stopping for.

`schema.py` holds the tables and opens files (version check, migration, WAL); `store.py` the
`Ledger`; `writer.py` the `StageWriter` a stage writes through.

Example:
    >>> from pathlib import Path; import tempfile
    >>> with Ledger(Path(tempfile.mkdtemp()) / "ledger.sqlite") as ledger:
    ...     with ledger.stage(1, "propose") as w:
    ...         w.add_metrics(1, "propose", {"n": 0})
    ...         w.cost(wall_s=1.5, cpu_s=1.2)
    ...     ledger.is_done(1, "propose")
    True
"""

from rsi.ledger.schema import SCHEMA_VERSION
from rsi.ledger.store import Ledger, StageWriter

__all__ = ["SCHEMA_VERSION", "Ledger", "StageWriter"]
