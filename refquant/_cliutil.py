"""Small helpers shared by the command-line tools."""
from __future__ import annotations

import os

__all__ = ["check_writable", "load_arrays", "nonnegative_float", "import_error_message"]


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


_NPZ_MAGIC = b"PK\x03\x04"        # a zip archive (numpy's .npz)
_NPY_MAGIC = b"\x93NUMPY"


def load_arrays(path, option: str, *, npy=True):
    """Read an .npz (returns {name: array}) or, when ``npy``, an .npy file (returns the array),
    never unpickling.  Raises ValueError naming ``option`` for a missing file, a file in
    neither format (judged by its first bytes, not its name) and object (pickled) arrays."""
    import zipfile

    import numpy as np
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise ValueError(f"{option}: file {p!r} does not exist" if not os.path.exists(p) else
                         f"{option}: {p!r} is not a file")
    with open(p, "rb") as f:
        head = f.read(6)
    kinds = ".npz" + (" or .npy" if npy else "")
    if head.startswith(_NPY_MAGIC):
        if not npy:
            raise ValueError(f"{option}: expected an .npz archive keyed by tensor names, got the "
                             f".npy file {p!r}")
    elif not head.startswith(_NPZ_MAGIC):
        raise ValueError(f"{option}: {p!r} is not an {kinds} file (numpy's formats: np.savez / np.save)")
    try:
        z = np.load(p, allow_pickle=False)
        if isinstance(z, np.ndarray):
            return z
        with z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ValueError(f"{option}: {p!r} holds object arrays, which refquant does not load "
                             f"(they would need unpickling); save numeric arrays") from None
        raise ValueError(f"{option}: cannot read {p!r} as {kinds} ({exc})") from None
    except (EOFError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{option}: cannot read {p!r} as {kinds} ({exc})") from None


def nonnegative_float(text):
    """argparse type: a finite float >= 0 (tolerances)."""
    import argparse
    import math
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return v


# optional packages some commands need: module name -> what to pip install
_OPTIONAL = {"onnx": "onnx", "onnxruntime": "onnxruntime", "torch": "torch", "openvino": "openvino",
             "ai_edge_litert": "ai-edge-litert", "scipy": "scipy", "tensorrt": "tensorrt"}


def import_error_message(exc) -> str:
    """The message for an ImportError: for a missing optional package, which one and how to
    install it (``pip install "refquant[onnx]"`` brings onnx and onnxruntime)."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if isinstance(exc, ModuleNotFoundError) and name in _OPTIONAL:
        hint = (' (or pip install "refquant[onnx]" for onnx and onnxruntime)'
                if name in ("onnx", "onnxruntime") else "")
        return (f"needs the Python package {_OPTIONAL[name]!r}, which is not installed here: "
                f"pip install {_OPTIONAL[name]}{hint}")
    return str(exc)
