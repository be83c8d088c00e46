"""What every config section shares: frozen pydantic models that forbid unknown keys, and the
form of the values that name files and parts (`absolute`, `reference`)."""

from __future__ import annotations

import os
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from rsi.config.loading import Invalid


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def absolute(path: str) -> str:
    """A relative file path made absolute against the current directory, once, when a config is
    made: a run reads the same file whichever directory a later command runs in."""
    return path if path.startswith("pkg:") else os.path.abspath(os.path.expanduser(path))


_REF_NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")
REFERENCE = "a built-in name, an installed package's entry point, or 'path/to/file.py:Name'"


def reference(ref: str) -> str:
    """The form of a reference to a part (task, reward, labeler, filter, objective): a name, or
    `path/to/file.py:Name` with the path made absolute. What it names is found where it is used
    (`rsi.registry`), and checked before a run starts (`rsi.resolve`)."""
    path, colon, name = ref.rpartition(":")
    if colon and path.endswith(".py") and name.isidentifier():
        return f"{absolute(path)}:{name}"
    if not _REF_NAME.match(ref):
        raise Invalid("not a name nor 'path/to/file.py:Name'", REFERENCE)
    return ref


Reference = Annotated[str, AfterValidator(reference)]  # a config value that names a part (`reference`)
