"""Name -> object registries for the parts a config names: tasks, rewards, labelers, filters,
objectives. Each part is found the same way, from one of three places:

- a built-in, registered by rsi's own modules (`sort`, `accuracy`, `vote`, `sft`, ...);
- an installed package's entry point in the kind's group (`rsi.tasks`, `rsi.rewards`,
  `rsi.labelers`, `rsi.filters`, `rsi.objectives`), e.g. in its pyproject.toml:
  `[project.entry-points."rsi.tasks"] subtraction = "mypkg.tasks:Subtraction"`;
- `path/to/file.py:Name`: `Name` defined in that file (imported once per process).

`Registry.resolve(ref)` returns the object; `Registry.origin(ref)` says where it came from (the
run records it with the file's sha256 or the package's version, `rsi.run.resolve.origins`), and a
later `rsi status`, `report` or `resume` finds the part again from the same reference. Registering
a name twice raises, so two plug-ins can never silently shadow each other.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Generic, TypeVar

from rsi.errors import PartFailed, RsiError
from rsi.hashing import file_sha256

T = TypeVar("T")
_modules: dict[tuple[Path, str], object] = {}  # plug-in files imported so far, by absolute path and sha256


class PluginError(RsiError):
    """A reference names nothing that can be found, or what it names cannot be loaded."""


def is_file_ref(ref: str) -> bool:
    """Whether `ref` has the form `path/to/file.py:Name`."""
    path, colon, name = ref.rpartition(":")
    return bool(colon) and path.endswith(".py") and name.isidentifier()


def load_file_object(ref: str, kind: str = "object") -> object:
    """`Name` from `path/to/file.py:Name`, the file imported once per process and content."""
    path_text, _, name = ref.rpartition(":")
    path = Path(path_text).expanduser().absolute()
    if not path.is_file():
        raise PluginError(f"{kind} {ref!r}: the file {path} does not exist")
    key = (path, file_sha256(path))  # a file changed since (a resume with --allow-changed) is imported anew
    module = _modules.get(key)
    if module is None:
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(f"rsi_plugin_{path.stem}_{digest}", path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[spec.name] = module  # type: ignore[union-attr]  (dataclasses and pickle look modules up)
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as e:
            del sys.modules[spec.name]  # type: ignore[union-attr]
            raise PluginError(f"{kind} file {path}: importing it raised {type(e).__name__}: {e}") from e
        _modules[key] = module
    if not hasattr(module, name):
        defined = [n for n, v in vars(module).items()
                   if (inspect.isfunction(v) or inspect.isclass(v)) and not n.startswith("_")
                   and getattr(v, "__module__", None) == module.__name__]  # type: ignore[attr-defined]
        raise PluginError(f"{kind} file {path} defines no {name!r}; defined in it: {', '.join(defined) or '(nothing)'}")
    return getattr(module, name)


class Registry(Generic[T]):
    """Maps names to objects of one kind ("task", "labeler", ...); see the module docstring."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.group = f"rsi.{kind}s"  # the entry-point group installed packages declare parts in
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """A registered (built-in) part; KeyError naming the known ones."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def resolve(self, ref: str) -> T:
        """The part `ref` names: a built-in, an entry point in `group`, or `path/to/file.py:Name`."""
        if ref in self._items:
            return self._items[ref]
        if is_file_ref(ref):
            return load_file_object(ref, self.kind)  # type: ignore[return-value]
        ep = self._entry_point(ref)
        if ep is None:
            raise PluginError(f"unknown {self.kind} {ref!r}; known: {', '.join(self.names())}, or an installed "
                              f"package's entry point in group '{self.group}', or 'path/to/file.py:Name'")
        try:
            return ep.load()
        except Exception as e:
            raise PluginError(f"{self.kind} {ref!r}: loading entry point {ep.value!r} ({self._dist(ep)}) raised "
                              f"{type(e).__name__}: {e}") from e

    def resolve_called(self, ref: str) -> T:
        """`resolve(ref)`, a part from outside rsi wrapped so that its exceptions are `PartFailed`
        naming it (and where it raised), which the CLI prints as one line and the loop places."""
        part = self.resolve(ref)
        if ref in self._items:
            return part

        @functools.wraps(part)  # type: ignore[arg-type]
        def called(*args, **kwargs):
            try:
                return part(*args, **kwargs)  # type: ignore[operator]
            except RsiError:
                raise
            except Exception as e:
                raise PartFailed(self.kind, ref, e) from e

        return called  # type: ignore[return-value]

    def origin(self, ref: str) -> dict:
        """Where `ref`'s part comes from: {"from": "built-in"}, {"from": "file", "path", "sha256"} or
        {"from": "entry point", "value", "package"}."""
        if ref in self._items:
            return {"from": "built-in"}
        if is_file_ref(ref):
            path = Path(ref.rpartition(":")[0]).expanduser().absolute()
            return {"from": "file", "path": str(path), "sha256": file_sha256(path) if path.is_file() else None}
        ep = self._entry_point(ref)
        return {"from": "entry point", "value": ep.value, "package": self._dist(ep)} if ep else {"from": "unknown"}

    def names(self) -> list[str]:
        """Built-in names and those installed packages declare, sorted."""
        return sorted({*self._items, *(ep.name for ep in importlib.metadata.entry_points(group=self.group))})

    def builtin(self, name: str) -> bool:
        return name in self._items

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def _entry_point(self, name: str):
        found = importlib.metadata.entry_points(group=self.group, name=name)
        return next(iter(found), None)

    @staticmethod
    def _dist(ep) -> str:
        dist = getattr(ep, "dist", None)
        return f"{dist.name} {dist.version}" if dist is not None else "an installed package"
