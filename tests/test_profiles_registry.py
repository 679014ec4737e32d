"""The profile registry and the Profile record: names, documentation, validation of choices,
per-op / per-axis / tail overrides."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import refquant as rq
from refquant.profile import Profile, _CHOICES
from refquant._builtin_profiles import ENGINE_OF

NAMES = ["onnx", "onnx-reference", "onnxruntime", "onnxruntime-avx2", "pytorch", "pytorch-fakequant",
         "pytorch-fbgemm", "pytorch-x86", "pytorch-qnnpack", "pytorch-onednn", "tflite-reference",
         "tflite-optimized", "tflite-xnnpack", "tensorrt"]


def test_all_names_registered_with_documentation():
    listed = rq.profiles()
    for n in NAMES:
        assert n in listed and listed[n], n
        p = rq.get_profile(n)
        assert p.name == n
        assert p.sources, f"{n}: no vendor sources cited"
        assert len(p.doc) > 200, f"{n}: no long documentation"
        doc = " ".join(p.doc.split())
        assert ("Verified live" in doc) or ("NOT verified live" in doc) or n == "onnx", n
    for n in ("onnxruntime-avx2", "tensorrt"):
        assert "NOT verified live" in " ".join(rq.get_profile(n).doc.split())


def test_engine_mapping_names_real_profiles():
    from refquant import engines as E
    for prof, eng in ENGINE_OF.items():
        assert prof in NAMES and eng in E.ENGINES and E.ENGINES[eng].profile == prof


def test_module_docstring_documents_every_field():
    import refquant.profile as P
    for f in dataclasses.fields(Profile):
        assert f.name in P.__doc__, f"field {f.name} is not documented in refquant.profile"


@pytest.mark.parametrize("field", sorted(_CHOICES))
def test_choices_are_validated(field):
    with pytest.raises(ValueError, match=field):
        Profile(**{field: "no-such-choice"})
    for value in _CHOICES[field]:
        Profile(**{field: value})


def test_other_field_validation():
    with pytest.raises(ValueError, match="q_vector_width"):
        Profile(q_vector_width=-1)
    with pytest.raises(TypeError):
        Profile(q_fma="yes")
    with pytest.raises(ValueError, match="dql_zero_range_scale"):
        Profile(dql_zero_range_scale=0.0)
    with pytest.raises(ValueError, match="selector"):
        Profile(overrides=(("Conv", {"rq_rounding": "half_up"}),))
    with pytest.raises(ValueError, match="rq_rounding"):
        Profile(overrides=(("QLinearConv", {"rq_rounding": "sideways"}),))
    with pytest.raises(ValueError, match="not an arithmetic field"):
        Profile(overrides=(("QLinearConv", {"name": "x"}),))
    with pytest.raises(ValueError, match="ops"):
        Profile(ops=("Conv",))
    with pytest.raises(ValueError, match="unknown profile"):
        rq.get_profile("tflite")
    with pytest.raises(TypeError):
        rq.get_profile(3)


def test_overrides_for_op():
    p = rq.get_profile("tflite-reference")
    fc = p.for_op("QLinearMatMul")
    conv = p.for_op("QLinearConv")
    assert (fc.rq_method, fc.rq_rounding, fc.rq_precision) == ("float", "half_away", "float64")
    assert conv is p and conv.rq_method == "fixed_point"
    t = rq.get_profile("pytorch")
    assert t.for_op("QuantizeLinear", per_axis=True).q_fma is False
    assert t.for_op("QuantizeLinear", per_axis=False) is t
    o = rq.get_profile("tflite-optimized")
    tail = o.for_op("QuantizeLinear", tail=True)
    assert (tail.q_scale_op, tail.q_rounding, tail.q_division_precision) == ("divide", "half_away", "float64")
    # overrides are hashable and survive replace()
    hash(p)
    assert p.replace(name="x").overrides == p.overrides


def test_custom_profile_from_fields():
    mine = rq.get_profile("onnx").replace(name="mine", q_rounding="half_away")
    y = rq.reference.quantize_linear(np.float32([0.5, 1.5, 2.5]), np.float32(1), np.int8(0), profile=mine)
    assert y.tolist() == [1, 2, 3]
    assert rq.get_profile("onnx").diff(mine) == {"q_rounding": ("half_even", "half_away")}
