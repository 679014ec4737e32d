"""fast() against ref(): the same bits or the same exception type (test helper)."""
from __future__ import annotations

import numpy as np
import pytest

import refquant


def same_as_reference(fast, ref, what, check):
    """ref() under np.errstate(all="ignore"); when it raises, fast() must raise the same type
    (returns None); otherwise check(fast(), want, what) and return the path fast() took."""
    try:
        with np.errstate(all="ignore"):
            want = ref()
    except Exception as e:  # noqa: BLE001
        with pytest.raises(type(e)):
            fast()
        return None
    check(fast(), want, what)
    return refquant.last_path()["path"]
