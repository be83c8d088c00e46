"""Export a run's accepted training examples as JSONL. Backs `rsi export RUN`.

One JSON object a line: {"prompt", "answer", "difficulty", "origin", "cycle"}, in the order the
ledger gives them (by cycle, then problem id), deduplicated by (prompt, answer). Load it with
`datasets.load_dataset("json", data_files=...)` or any JSONL reader.

Example:
    >>> export(Path("runs/demo"))                               # doctest: +SKIP
    (PosixPath('runs/demo/accepted.jsonl'), 412)
"""

from __future__ import annotations

import json
from pathlib import Path

from rsi.run.rundir import atomic_write_text, open_ledger


def export(run_dir: Path, out: Path | None = None) -> tuple[Path, int]:
    """Write the accepted examples of the run in `run_dir` to `out` (default `run_dir/accepted.jsonl`);
    returns the file and how many rows it holds."""
    run_dir = Path(run_dir)
    with open_ledger(run_dir) as ledger:
        accepted = ledger.accepted()
    out = Path(out) if out is not None else run_dir / "accepted.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"prompt": ex.prompt, "answer": ex.answer, "difficulty": ex.difficulty,
                         "origin": ex.origin, "cycle": cycle}, ensure_ascii=False)
             for cycle, ex in accepted]
    atomic_write_text(out, "".join(line + "\n" for line in lines))
    return out, len(lines)
