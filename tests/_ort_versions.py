"""The installed onnxruntime's release and what older releases do differently (found live on
1.30.0 and 1.31.1 against 1.32.0; docs/profiles.md, "onnxruntime releases").  The ``onnxruntime``
profile follows 1.32; the live tests that meet a known difference of an older release check the
older behaviour where refquant models it, and skip with the reason where it is an engine bug."""
from __future__ import annotations

import pytest


def ort_version():
    """(major, minor) of the installed onnxruntime, or None."""
    try:
        import onnxruntime
    except ImportError:
        return None
    from refquant.calibration.qparams import ort_version_tuple
    return ort_version_tuple(onnxruntime.__version__)


def ort_before(major, minor):
    """True when the installed onnxruntime is older than major.minor."""
    v = ort_version()
    return v is not None and v < (major, minor)


def skip_before(major, minor, why):
    """Skip when the installed onnxruntime is older than major.minor, saying what it does."""
    if ort_before(major, minor):
        import onnxruntime
        pytest.skip(f"onnxruntime {onnxruntime.__version__} < {major}.{minor}: {why}")


#: onnxruntime <= 1.31 divides float16 inputs of QuantizeLinear in float32 at every opset (1.32
#: divides in float16 from opset 23, as the spec does)
FP16_DIVISION_BEFORE_1_32 = "float32"


def ort_profile():
    """The onnxruntime profile as the installed release computes (1.32 and later: the profile)."""
    from refquant.profile import get_profile
    p = get_profile("onnxruntime")
    if ort_before(1, 32):
        return p.replace(name="onnxruntime<=1.31", q_fp16_division=FP16_DIVISION_BEFORE_1_32)
    return p
