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


def run_in_threads(work, n, kernel_threads=2):
    """work(i) for i in range(n), each on its own Python thread, all at once, with the kernels'
    thread count set to ``kernel_threads`` (the default restored after)."""
    import threading
    refquant.set_num_threads(kernel_threads)
    try:
        ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        refquant.set_num_threads(None)
