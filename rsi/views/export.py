"""Export a run's accepted training data, with where each example came from. Backs `rsi export RUN`.

One row per accepted example (every kept answer, deduplicated by (prompt, answer), the first kept;
`rsi.ledger.accepted`), in the ledger's order (by cycle, then problem id, then sample index):

    prompt, completion       the problem and the accepted answer: what rsi trains on, named as
                             TRL's SFT and GRPO trainers expect (prompt-completion data)
    cycle, difficulty        the cycle that first kept it, the problem's difficulty
    source                   model | human: who gave the answer (the ground-truth seed data is a
                             stream the task generates for each batch, never stored, so not here)
    problem_source           the problem's ledger source (generated, human, seed, or the checkpoint
                             that proposed it in self-play)
    model                    the checkpoint that wrote the answer (its sample), null for none
    model_weights_sha256     that checkpoint's weights digest, as the run recorded it
    labeler, verifier        how the label was given (verifier | vote) and, for a verifier, the task's
    label_reason, agreement  the labeler's reason, and the share of samples that agreed (vote)
    sample                   the model's completion as written (before the answer was read out of it)
    problem_id, sample_index the ledger keys of the problem and the sample

Formats: `jsonl` (one JSON object a line), `parquet` (pyarrow) and `hf` (a `datasets.Dataset`
saved with `save_to_disk`; load it with `datasets.load_from_disk`). Every file is written under a
temporary name and renamed into place.

Example:
    >>> export(Path("runs/demo"), fmt="parquet")                   # doctest: +SKIP
    (PosixPath('runs/demo/accepted.parquet'), 412)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from rsi.errors import RsiError
from rsi.run.rundir import atomic_write_text, open_ledger

FORMATS = {"jsonl": "accepted.jsonl", "parquet": "accepted.parquet", "hf": "accepted-hf"}
COLUMNS = ("prompt", "completion", "cycle", "difficulty", "source", "problem_source", "model", "model_weights_sha256",
           "labeler", "verifier", "label_reason", "agreement", "sample", "problem_id", "sample_index")


class ExportError(RsiError):
    """An export that cannot be written as asked (a format, a missing package, an output in the way)."""


def _source(problem_source: str) -> str:
    return problem_source if problem_source in ("seed", "human") else "model"


def rows(run_dir: Path) -> list[dict]:
    """The accepted examples of the run in `run_dir` with their provenance columns (`COLUMNS`)."""
    with open_ledger(run_dir) as ledger:
        info = ledger.run_info() or {}
        found = ledger.provenance()
        weights: dict[str, str] = {}
        for m in ledger.metrics():
            if m["stage"] in ("base", "train"):
                weights.update(m["metrics"].get("checkpoints", {}))
    config = info.get("config", {})
    labeler = config.get("label", {}).get("labeler")
    verifier = config.get("task") if labeler == "verifier" else None
    return [{"prompt": r["prompt"], "completion": r["answer"], "cycle": r["cycle"], "difficulty": r["difficulty"],
             "source": _source(r["source"]), "problem_source": r["source"], "model": r["model"],
             "model_weights_sha256": weights.get(r["model"]) if r["model"] else None, "labeler": labeler,
             "verifier": verifier, "label_reason": r["reason"], "agreement": r["agreement"], "sample": r["sample"],
             "problem_id": r["problem_id"], "sample_index": r["sample_index"]} for r in found]


def _need(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ExportError(f"--format needs the {module} package, which is not installed. Install the extra: "
                          "pip install 'rsi[data]'") from None


def _table(found: list[dict]):
    pa = _need("pyarrow")
    return pa.Table.from_pylist(found, schema=pa.schema([
        ("prompt", pa.string()), ("completion", pa.string()), ("cycle", pa.int64()), ("difficulty", pa.int64()),
        ("source", pa.string()), ("problem_source", pa.string()), ("model", pa.string()),
        ("model_weights_sha256", pa.string()), ("labeler", pa.string()), ("verifier", pa.string()),
        ("label_reason", pa.string()), ("agreement", pa.float64()), ("sample", pa.string()),
        ("problem_id", pa.string()), ("sample_index", pa.int64())]))


def _write_parquet(found: list[dict], out: Path) -> None:
    table = _table(found)
    import pyarrow.parquet as pq

    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_hf(found: list[dict], out: Path) -> None:
    table = _table(found)
    datasets = _need("datasets")
    if out.exists() and not (out / "dataset_info.json").is_file():
        raise ExportError(f"--out {out} exists and is not a saved dataset; choose another --out.")
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        datasets.disable_progress_bars()
        datasets.Dataset(table).save_to_disk(str(tmp))
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export(run_dir: Path, out: Path | None = None, fmt: str = "jsonl") -> tuple[Path, int]:
    """Write the accepted examples of the run in `run_dir` as `fmt` to `out` (default
    `run_dir/accepted.jsonl`, `accepted.parquet` or `accepted-hf/`); returns the path and the row count."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    found = rows(run_dir)
    out = Path(out) if out is not None else run_dir / FORMATS[fmt]
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in found))
    elif fmt == "parquet":
        _write_parquet(found, out)
    else:
        _write_hf(found, out)
    return out, len(found)
