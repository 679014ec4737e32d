"""Small helpers shared by the command-line tools."""
from __future__ import annotations

import os

__all__ = ["check_writable"]


def check_writable(path, option: str) -> None:
    """Raise ValueError (one line, naming ``option``) when ``path`` cannot be written: checked
    before a long run so that the run is not lost at the end.  ``None`` and ``'-'`` (stdout)
    pass."""
    if path is None or path == "-":
        return
    p = os.fspath(path)
    if os.path.isdir(p):
        raise ValueError(f"{option}: {p!r} is a directory; give a file name")
    d = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(d):
        raise ValueError(f"{option}: cannot write {p!r}: the directory {d!r} does not exist")
    if os.path.exists(p):
        if not os.access(p, os.W_OK):
            raise ValueError(f"{option}: cannot write {p!r}: permission denied")
    elif not os.access(d, os.W_OK | os.X_OK):
        raise ValueError(f"{option}: cannot write {p!r}: the directory {d!r} is not writable")
