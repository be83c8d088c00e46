"""A checkpoint's manifest (`manifest.json`): the sha256 of each file, the checkpoint's metadata,
and the one digest a person compares, `weights_sha256`.

`weights_sha256` is what `sha256sum models/<name>/model.safetensors` prints when the weights are
one file (as every rsi checkpoint is below 5 GB); for sharded weights it is the sha256 of the
`sha256sum *.safetensors` lines. `rsi status` shows it for the champion. The manifest's own
integrity is `manifest_sha256`, a hash of the rest of the manifest (older manifests call it
`sha256`). No heavy imports: `rsi status` verifies every checkpoint on each read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rsi.errors import CheckpointError
from rsi.hashing import file_sha256

MANIFEST = "manifest.json"


def weights_sha256(files: dict[str, str]) -> str:
    """The weights' digest from {file name: sha256}: the one weight file's own sha256, or for
    several, the sha256 of their `sha256sum` lines in name order."""
    weights = sorted((name, digest) for name, digest in files.items() if name.endswith(".safetensors"))
    if len(weights) == 1:
        return weights[0][1]
    return hashlib.sha256("".join(f"{d}  {n}\n" for n, d in weights).encode()).hexdigest()


def checkpoint_sha256(path: Path) -> str:
    """`weights_sha256` of the checkpoint directory `path`, hashed from its files as they are now."""
    return weights_sha256({p.name: file_sha256(p) for p in Path(path).glob("*.safetensors")})


def recorded_sha256(path: Path) -> str:
    """The `weights_sha256` a checkpoint's manifest recorded when it was saved."""
    return json.loads((Path(path) / MANIFEST).read_text())["weights_sha256"]


def write_manifest(path: Path, meta: dict) -> dict:
    """Hash every file in the checkpoint directory `path` and write its manifest there."""
    files = {p.name: file_sha256(p) for p in sorted(Path(path).iterdir()) if p.is_file() and p.name != MANIFEST}
    body = {"files": files, "meta": meta, "weights_sha256": weights_sha256(files)}
    manifest = body | {"manifest_sha256": _digest(body)}
    (Path(path) / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def verify_checkpoint(path: Path) -> dict:
    """Check every file against the manifest; return the manifest or raise CheckpointError."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"checkpoint {path} has no {MANIFEST}: it is incomplete or not an rsi checkpoint. "
                              "Re-run the stage that writes it (`rsi resume`), or point at a complete checkpoint.")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint manifest {manifest_path} is unreadable ({e}).") from None
    own = "manifest_sha256" if "manifest_sha256" in manifest else "sha256"  # older manifests: "sha256"
    body = {k: v for k, v in manifest.items() if k != own}
    keys = {"files", "meta"} | ({"weights_sha256"} if own == "manifest_sha256" else set())
    if set(body) != keys or not isinstance(files, dict) or (own in manifest and manifest[own] != _digest(body)):
        raise CheckpointError(f"checkpoint manifest {manifest_path} is corrupted (its keys or its own sha256 do not "
                              "match its contents). Restore it, or retrain that cycle with `rsi repair`.")
    for name, digest in files.items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"checkpoint {path} is missing {name}, listed in its manifest. Restore it, or "
                                  "retrain that cycle with `rsi repair`.")
        if file_sha256(f) != digest:
            raise CheckpointError(
                f"checkpoint file {f} does not match the sha256 in {manifest_path}: the file is corrupted "
                "or was changed after saving. Restore it, or retrain that cycle with `rsi repair`."
            )
    return manifest


def verify_all(models_dir: Path) -> dict[str, str | None]:
    """{checkpoint name: None if it verifies, else what is wrong} for every checkpoint of a run."""
    out: dict[str, str | None] = {}
    for d in sorted(Path(models_dir).iterdir()) if Path(models_dir).is_dir() else ():
        if d.is_dir() and "." not in d.name:  # not a `.tmp` being written
            try:
                verify_checkpoint(d)
                out[d.name] = None
            except CheckpointError as e:
                out[d.name] = str(e)
    return out


def _digest(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
