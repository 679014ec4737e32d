"""Strict JSON for the command-line reports.

JSON has no Infinity or NaN; Python's ``json`` writes them as the bare tokens ``Infinity`` /
``NaN``, which strict parsers (JavaScript ``JSON.parse``, Go, serde_json) reject.  Every refquant
JSON report writes a non-finite number as the string ``"inf"``, ``"-inf"`` or ``"nan"`` (the
convention of ``refquant compare`` and ``Explanation.to_dict``); the Python API values stay
floats.
"""
from __future__ import annotations

import json
import math

import numpy as np

__all__ = ["strict", "dumps", "dump"]


def strict(o):
    """``o`` with numpy scalars/arrays made plain and non-finite floats as "inf"/"-inf"/"nan"."""
    if isinstance(o, dict):
        return {str(k) if not isinstance(k, str) else k: strict(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [strict(v) for v in o]
    if isinstance(o, np.ndarray):
        return strict(o.tolist())
    if isinstance(o, (bool, np.bool_)):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, (float, np.floating)):
        f = float(o)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    return o


def dumps(o, **kw) -> str:
    return json.dumps(strict(o), allow_nan=False, **kw)


def dump(o, f, **kw) -> None:
    json.dump(strict(o), f, allow_nan=False, **kw)
