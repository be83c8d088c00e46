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
import os
import tempfile
from pathlib import Path

from rsi.status import open_ledger


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`. The file is
    readable by its owner only (0600), whatever the umask: it holds the run's data."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
