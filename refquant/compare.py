"""``refquant compare``: the first tensor where an engine leaves the reference, in output steps.

    refquant compare MODEL.onnx --inputs INPUTS.npz
                     [--engine onnxruntime | --engine reference:PROFILE | --observed OBSERVED.npz]
                     [--profile P] [--ort-optimization {disabled,basic,extended,all}] [--fuse F]
                     [--tolerance STEPS] [--json FILE] [--html FILE]

Python: ``compare_model(model, inputs, engine="onnxruntime" | observed={...}, ...)`` returns a
:class:`CompareResult` (``.first_divergence``, ``.tensors``, ``str(result)``, ``.to_dict()``,
``.to_html()``).

How the engine is observed without changing what is measured
-------------------------------------------------------------
``--engine onnxruntime`` runs ONNX Runtime (CPU EP, 1 thread) ONCE at the requested optimization
level with ``SessionOptions.optimized_model_filepath``: the graph ORT really executes (its QDQ ->
QLinear fusions, layout changes) is saved.  Every tensor of that optimized graph that the
reference also has is then marked as a graph output, and the *saved optimized model* runs with
optimizations disabled -- so marking outputs cannot un-fuse anything: the kernels and their
inputs are the ones the optimized session runs.  Tensors that exist only inside a fusion
(the float Conv output between a DQ and a Q that became one QLinearConv) are simply not
observable, and are not compared.  The reference runs ``run_model(profile, fuse)`` with the fuse
mode matching the level: disabled -> None, basic -> "onnxruntime-basic", extended/all ->
"onnxruntime" (see ``refquant.model``).

``--engine reference:PROFILE`` runs the whole model under another profile (e.g.
``reference:onnxruntime-avx2``: ONNX Runtime on an AVX2 CPU without VNNI) as the "engine": the
layer-by-layer answer to "will this model give other results on that machine?".

``--observed OBSERVED.npz`` compares arrays recorded from any engine (TensorRT with the layer
outputs that exist in the engine, a debugger dump, ...), keyed by tensor name, with
``run_model(profile, fuse)`` (``--fuse`` default: none).

Differences, in steps
---------------------
- integer (quantized) tensors: codes (|a - b| as integers); float8/4: code positions;
- float tensors written by a DequantizeLinear with a constant scale: steps of that scale
  (|a - b| / scale, per channel for per-axis scales);
- other float tensors: ``max_steps`` is null; ``max_abs``, ``max_rel`` and ``max_ulps`` (in
  units of the reference value's float spacing) are reported.  Such a tensor counts as diverged
  only when ``max_abs > float_rtol * max|reference|`` (default by dtype: 1e-5 for float32,
  5e-3 for float16, 4e-2 for bfloat16, 1e-12 for float64): a float Conv summed in
  another order differs by ulps, which is not a divergence but can flip a later Q (see below).
A tensor diverges when its ``max_steps > tolerance`` (default 0).  ``first_divergence`` is the
first diverged tensor in topological order.

Causes (``cause`` of each diverged tensor; ``detail`` says more)
----------------------------------------------------------------
- ``propagated from an earlier divergence``: an ancestor tensor (through the executed graph)
  already diverged.
- ``int16 pair saturation``: a u8 x s8 integer op (int8 activations shifted to uint8 by ORT's
  QDQS8ToU8 count as uint8) whose vpmaddubsw pair sums leave int16, and the reference with
  ``int16_pair_saturation`` switched on (engine saturates) or off (the reference profile
  saturates) reproduces the observed codes.
- ``saturation``: the differing outputs sit at qmin/qmax with the exact value beyond the range.
- ``NaN/Inf policy``: a QuantizeLinear whose differing inputs are NaN, +-Inf or beyond int32
  after scaling: the profiles' q_nan / q_inf / q_overflow rules decide (e.g. onnx NaN -> qmin,
  pytorch NaN -> qmax, tensorrt NaN -> 0, tflite +Inf -> INT32_MIN wrap -> qmin).
- ``float accumulation order``: a QuantizeLinear whose float input differs between the two
  runs by a few ulps (both within float_rtol) and sits within them of a rounding boundary; or a
  float tensor within float_rtol.
- ``tie``: the exact value at the differing outputs is a rounding tie (x.5 steps) -- for a
  QuantizeLinear, fl32(x/s) (or fl32(x*fl32(1/s))) as the profiles compute it -- or within
  1e-3 steps of one: rounding rule, x/s vs x*(1/s), or the fp32 requantization multiplier of a
  fused QLinear kernel vs the float simulation (onnxruntime#32132); or, with a fixed-point
  (gemmlowp / TFLite) profile on either side, within its double-rounding error 0.5/2^shift.
- ``engine rewrite``: the engine computed the tensor with a kernel the reference does not
  emulate (ORT replaced the model's op by a com.microsoft one, e.g. DQ(int8 weight) -> MatMul /
  Gemm by MatMulNBits, which quantizes the activations to int8 inside); ``detail`` names it.
- ``unknown``: none of the above (``refquant.explain``, where installed, adds which profile
  reproduces the observed output of a single quantized op).

Exit status of the command: 0 no divergence, 1 divergence found, 2 usage or run error.
"""
from __future__ import annotations

import dataclasses
import html as _html
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field

import numpy as np

from .model import load_model, _execute, _attrs, _normalize_fuse

__all__ = ["compare_model", "CompareResult", "TensorDiff", "observe_onnxruntime",
           "ORT_LEVELS", "add_parser", "run", "CAUSES"]

ORT_LEVELS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
              "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
_LEVEL_FUSE = {"disabled": None, "basic": "onnxruntime-basic", "extended": "onnxruntime",
               "all": "onnxruntime"}
CAUSES = ("tie", "saturation", "NaN/Inf policy", "int16 pair saturation", "float accumulation order",
          "engine rewrite", "propagated from an earlier divergence", "unknown")
_QLIN = ("QLinearConv", "QLinearMatMul", "QGemm", "TensorRTFused", "MatMulInteger", "ConvInteger",
         "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool")
_NEAR_TIE = 1e-3


@dataclass
class TensorDiff:
    """One compared tensor.  ``max_steps`` is None for float tensors off a quantization grid."""
    name: str
    op: str
    dtype: str
    shape: tuple
    size: int
    n_diff: int
    max_steps: float | None
    unit: str                      # "code", "scale step", "float"
    diverged: bool
    cause: str | None = None
    detail: str = ""
    max_abs: float | None = None
    max_rel: float | None = None
    max_ulps: float | None = None
    first_index: tuple | None = None
    observed_as: str | None = None   # how the engine stored it (e.g. an NHWC tensor of ORT_ENABLE_ALL)
    local_n_diff: int | None = None  # differences when the layer runs on the engine's own inputs
    local_max_steps: float | None = None
    local_diverged: bool | None = None

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["shape"] = list(self.shape)
        d["first_index"] = None if self.first_index is None else list(self.first_index)
        for k in ("max_steps", "max_abs", "max_rel", "max_ulps", "local_max_steps"):
            if d[k] is not None and not np.isfinite(d[k]):
                d[k] = str(d[k])
        return d


@dataclass
class CompareResult:
    """Result of :func:`compare_model`."""
    first_divergence: str | None
    tensors: list
    engine: str
    profile: str
    fuse: str | None
    only_reference: list = field(default_factory=list)   # tensors the engine side lacks
    only_observed: list = field(default_factory=list)    # observed names the reference lacks
    fusions: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    profile_obj: object = field(default=None, repr=False, compare=False)

    @property
    def diverged(self):
        return [t for t in self.tensors if t.diverged]

    @property
    def independent(self):
        """Diverged tensors that still differ when their layer runs on the engine's own inputs
        (each one is a divergence of its own, not a consequence of an earlier one)."""
        return [t.name for t in self.tensors if t.diverged and t.local_diverged is not False
                and t.cause != "propagated from an earlier divergence"]

    def to_dict(self):
        return {"first_divergence": self.first_divergence,
                "tensors": [t.to_dict() for t in self.tensors],
                "engine": self.engine, "profile": self.profile, "fuse": self.fuse,
                "n_compared": len(self.tensors), "n_diverged": len(self.diverged),
                "independent": self.independent,
                "only_reference": list(self.only_reference),
                "only_observed": list(self.only_observed),
                "fusions": [f.to_dict() for f in self.fusions], "notes": list(self.notes)}

    def __str__(self):
        lines = [f"refquant compare: {self.engine} vs reference (profile {self.profile}, "
                 f"fuse {self.fuse})"]
        lines.append(f"{len(self.tensors)} tensors compared, {len(self.diverged)} diverged; "
                     f"first divergence: {self.first_divergence or 'none'}")
        if len(self.independent) > 1:
            lines.append(f"independent divergences (each differs on the engine's own inputs): "
                         f"{', '.join(self.independent)}")
        w = max([len(t.name) for t in self.tensors] + [6])
        lines.append(f"  {'tensor':<{w}}  {'op':<22} {'n_diff':>12}  {'max diff':>14}  cause")
        for t in self.tensors:
            if t.max_steps is not None:
                md = f"{t.max_steps:g} {'codes' if t.unit == 'code' else 'steps'}"
            elif t.n_diff:
                md = f"{t.max_ulps:g} ulps" if t.max_ulps is not None else "?"
            else:
                md = "0"
            mark = "*" if t.name == self.first_divergence else " "
            cause = t.cause or ""
            lines.append(f"{mark} {t.name:<{w}}  {t.op:<22} {f'{t.n_diff}/{t.size}':>12}  {md:>14}  "
                         f"{cause}")
            if t.diverged and t.detail:
                lines.append(f"  {'':<{w}}    {t.detail}")
            if t.observed_as:
                lines.append(f"  {'':<{w}}    ({t.observed_as})")
        if self.only_observed:
            lines.append(f"observed names the model does not have (not compared): "
                         f"{', '.join(self.only_observed[:20])}"
                         + (" ..." if len(self.only_observed) > 20 else ""))
        if self.only_reference:
            where = ("missing from the observed arrays (not compared)" if self.engine == "observed"
                     else "not observable on the engine side (inside fusions or renamed)")
            lines.append(f"{where}: "
                         f"{', '.join(self.only_reference[:20])}"
                         + (" ..." if len(self.only_reference) > 20 else ""))
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)

    def to_html(self):
        e = _html.escape
        rows = []
        for t in self.tensors:
            color = "#fdd" if t.diverged and t.name == self.first_divergence else \
                ("#fee" if t.diverged else ("#ffd" if t.n_diff else "#fff"))
            md = "" if t.max_steps is None else f"{t.max_steps:g}"
            rows.append(f"<tr style='background:{color}'><td>{e(t.name)}</td><td>{e(t.op)}</td>"
                        f"<td>{e(t.dtype)}{list(t.shape)}</td><td>{t.n_diff}/{t.size}</td><td>{md}</td>"
                        f"<td>{e(t.unit)}</td><td>{'' if t.max_ulps is None else f'{t.max_ulps:g}'}</td>"
                        f"<td>{e(t.cause or '')}</td><td>{e(t.detail)}</td></tr>")
        fus = "".join(f"<li>{e(f.kind)}: {e(', '.join(f.nodes))} &rarr; {e(f.output)}"
                      f"{' (removed: ' + e(', '.join(f.removed)) + ')' if f.removed else ''}</li>"
                      for f in self.fusions)
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>refquant compare</title>"
                f"<style>body{{font-family:sans-serif}}td,th{{border:1px solid #ccc;padding:2px 6px;"
                f"font-size:13px}}table{{border-collapse:collapse}}</style></head><body>"
                f"<h2>refquant compare: {e(self.engine)} vs reference</h2>"
                f"<p>profile <b>{e(self.profile)}</b>, fuse <b>{e(str(self.fuse))}</b>; "
                f"{len(self.tensors)} tensors compared, {len(self.diverged)} diverged; first "
                f"divergence: <b>{e(self.first_divergence or 'none')}</b></p>"
                f"<table><tr><th>tensor</th><th>op</th><th>type</th><th>n_diff</th><th>max steps</th>"
                f"<th>unit</th><th>max ulps</th><th>cause</th><th>detail</th></tr>{''.join(rows)}</table>"
                f"<h3>Fusions emulated by the reference</h3><ul>{fus or '<li>none</li>'}</ul>"
                f"<p>Not observable on the engine side: {e(', '.join(self.only_reference)) or 'none'}</p>"
                f"</body></html>")


# --------------------------------------------------------------------------- engines

def default_ort_profile():
    """'onnxruntime' on a CPU with VNNI/AMX (MLAS never saturates there), else 'onnxruntime-avx2'."""
    try:
        from ._config import cpu_features
        f = cpu_features() or {}
    except Exception:  # noqa: BLE001
        return "onnxruntime"
    if not f:
        return "onnxruntime"
    if f.get("avx512vnni") or f.get("avxvnni") or f.get("amx_int8") or not f.get("avx2"):
        return "onnxruntime"
    return "onnxruntime-avx2"


def observe_onnxruntime(model, inputs, optimization="disabled", *, names=None, threads=1):
    """Run ONNX Runtime (CPU EP) at an optimization level and return (values, optimized model).

    The session is created once with ``optimized_model_filepath``; the saved optimized graph then
    runs with optimizations disabled and every tensor of it named in ``names`` (default: all
    node outputs) marked as a graph output, so the fused kernels are the ones the optimized session
    runs.  Returns ({tensor name: array}, optimized ModelProto)."""
    import onnx
    import onnxruntime as ort
    if optimization not in ORT_LEVELS:
        raise ValueError(f"optimization: expected one of {tuple(ORT_LEVELS)}, got {optimization!r}")
    model = load_model(model)
    with tempfile.TemporaryDirectory(prefix="refquant_cmp_") as d:
        src = os.path.join(d, "model.onnx")
        opt = os.path.join(d, "optimized.onnx")
        onnx.save(model, src)
        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, ORT_LEVELS[optimization])
        so.optimized_model_filepath = opt
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        om = onnx.load(opt)
    produced = [o for n in om.graph.node for o in n.output if o]
    want = produced if names is None else [t for t in produced if t in set(names)]
    existing = {o.name for o in om.graph.output}
    for t in want:
        if t not in existing:
            om.graph.output.append(onnx.ValueInfoProto(name=t))
    so2 = ort.SessionOptions()
    so2.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so2.intra_op_num_threads = threads
    so2.inter_op_num_threads = 1
    so2.log_severity_level = 3
    sess = ort.InferenceSession(om.SerializeToString(), so2, providers=["CPUExecutionProvider"])
    outs = [o.name for o in sess.get_outputs()]
    feeds = {k: np.asarray(v) for k, v in inputs.items()}
    vals = sess.run(outs, feeds)
    return dict(zip(outs, vals)), om


def _ort_optimized_graph(model, optimization):
    """The graph ORT executes at ``optimization`` (saved, not run)."""
    import onnx
    import onnxruntime as ort
    with tempfile.TemporaryDirectory(prefix="refquant_cmp_") as d:
        src = os.path.join(d, "model.onnx")
        opt = os.path.join(d, "optimized.onnx")
        onnx.save(load_model(model), src)
        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, ORT_LEVELS[optimization])
        so.optimized_model_filepath = opt
        so.log_severity_level = 3
        ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        return onnx.load(opt)


_LAYOUT_FREE = ("Add", "Mul", "Sub", "Div", "Relu", "Clip", "Sigmoid", "LeakyRelu", "Identity", "Cast",
                "QuantizeLinear", "DequantizeLinear", "MaxPool", "AveragePool", "Tanh", "Erf",
                # rank-preserving ops ORT's transpose optimizer pushes a Transpose through by
                # permuting their axes / constant inputs (scales, pads, starts, repeats)
                "Resize", "Pad", "Concat", "Slice", "Split", "Tile", "Abs", "Neg", "Exp", "Log",
                "Sqrt", "Reciprocal", "Pow", "Min", "Max", "Sum", "Mean", "PRelu", "Softplus",
                "HardSigmoid", "HardSwish", "Elu", "Selu", "Floor", "Ceil", "Round", "Sign", "Where",
                "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Not", "And", "Or")


def _channels_last(rank):
    return (0,) + tuple(range(2, rank)) + (1,)


def layout_aliases(om_all, om_ext, observed):
    """Align ORT_ENABLE_ALL tensors that the layout transformer renamed and stored channels-last
    with the ORT_ENABLE_EXTENDED (= reference) names.

    Each tensor of the ALL graph gets the permutation from logical (NCHW) to stored layout,
    composed through its Transposes and carried by layout-free and com.microsoft ops and by the
    rank-preserving ops the transpose optimizer rewrites in place (Resize, Pad, Concat, ...).  A
    permuted output of node ``<name>[_token_<k>]`` is the output of the EXTENDED graph's node
    ``<name>`` (ORT keeps node names through the layout change); it is transposed back.
    Returns {extended tensor name: (array, note)}."""
    import re
    from onnx import helper
    perm = {}
    for n in om_all.graph.node:
        if not n.input:
            continue
        src = perm.get(n.input[0])
        if src is None and n.op_type != "Transpose":
            # the first permuted input (QLinearConcat's first inputs are its output's qparams)
            src = next((perm[t] for t in n.input if t in perm), None)
        if n.op_type == "Transpose" and n.domain in ("", "ai.onnx"):
            p = None
            for a in n.attribute:
                if a.name == "perm":
                    p = tuple(helper.get_attribute_value(a))
            if p is None:
                continue
            q = src if src is not None else tuple(range(len(p)))
            if q == "CL":
                q = _channels_last(len(p))
            if len(q) != len(p):
                continue
            comp = tuple(q[i] for i in p)
            if comp != tuple(range(len(comp))):
                perm[n.output[0]] = comp
        elif n.domain.startswith("com.microsoft") and any(
                a.name == "channels_last" and helper.get_attribute_value(a) == 1 for a in n.attribute):
            # an NHWC kernel (QLinearConv, QLinearGlobalAveragePool, ...) writes channels-last,
            # whatever the transpose optimizer cancelled before it
            for o in n.output:
                if o:
                    perm[o] = "CL"
        elif src is not None and (n.domain.startswith("com.microsoft") or n.op_type in _LAYOUT_FREE):
            for o in n.output:
                if o:
                    perm[o] = src
    ext_out = {n.name: [o for o in n.output if o] for n in om_ext.graph.node if n.name}
    ext_by_inputs = {}
    for n in om_ext.graph.node:
        if n.output and n.output[0]:
            ext_by_inputs.setdefault((n.op_type, n.domain, tuple(n.input)), n.output[0])
    name_map = {}     # ALL tensor -> EXTENDED tensor
    out = {}
    for n in om_all.graph.node:
        if n.op_type == "Transpose" or not n.output or not n.output[0]:
            continue
        o = n.output[0]
        base = re.sub(r"_token_\d+$", "", n.name)
        if n.name and base in ext_out and ext_out[base]:
            target = ext_out[base][0]
        else:
            # an unnamed node (inlined function, fusion): the EXTENDED node of the same op on
            # the corresponding inputs
            target = ext_by_inputs.get((n.op_type, n.domain, tuple(name_map.get(t, t) for t in n.input)))
        if target is None:
            continue
        name_map[o] = target
        if o not in perm or o not in observed:
            continue
        p = perm[o]
        v = np.asarray(observed[o])
        if p == "CL":
            p = _channels_last(v.ndim)
        if v.ndim != len(p):
            continue
        out[target] = (np.transpose(v, np.argsort(p)),
                                 f"observed as {o!r} ({n.op_type}, stored with axes {list(p)})")
    return out


_FUSED_AS = {"Gemm": ("QGemm",), "MatMul": ("QLinearMatMul", "MatMulIntegerToFloat"),
             "Conv": ("QLinearConv",)}


def rename_aliases(om, m, observed, ref):
    """Align tensors that ORT's rewrites renamed with the reference tensors, by node name.

    ORT keeps node names through its fusions and through ``QDQS8ToU8Transformer``, which renames
    every converted int8 Q output ``qdq_s8_to_u8_quant*`` (and the kernels fused over it write
    those names).  A node of ``om`` named ``<n>`` is the reference node ``<n>``, ``<n>_fused`` or
    ``<n>_fused__s8_to_u8`` of the same op type (or the float op that ORT fused into it, when the
    reference runs unfused); its outputs are aligned by position.  Where ORT
    runs the op on codes and the reference on floats (a Reshape/Transpose between a dropped DQ and
    Q), the reference's only consumer, a QuantizeLinear, gives the tensor to compare (re-quantizing
    with the dropped pair's grid is exact).  uint8 codes of a converted int8 tensor are int8 codes
    + 128 (the zero point moved by 128), so they are compared shifted back.
    Returns {reference tensor name: (array, note, ORT tensor name)}."""
    from .model import _S8U8
    ref_nodes = {n.name: n for n in m.graph.node if n.name}
    consumers = {}
    for n in m.graph.node:
        for t in n.input:
            if t:
                consumers.setdefault(t, []).append(n)
    out = {}
    for n in om.graph.node:
        rn = None
        for nm in (n.name, n.name + "_fused", n.name + "_fused" + _S8U8):
            c = ref_nodes.get(nm)
            if c is not None and len(c.output) == len(n.output) and (
                    c.op_type == n.op_type or n.op_type in _FUSED_AS.get(c.op_type, ())
                    or n.op_type == "QLinear" + c.op_type):
                rn = c
                break
        if rn is None:
            continue
        for o, r in zip(n.output, rn.output):
            if not o or not r or o == r or o in ref or o not in observed:
                continue
            ov = np.asarray(observed[o])
            rv = ref.get(r)
            if rv is None or isinstance(rv, (list, tuple)):
                continue
            rv = np.asarray(rv)
            via = ""
            if rv.dtype.kind == "f" and ov.dtype.kind in "iu":
                cs = consumers.get(r, [])
                if len(cs) == 1 and cs[0].op_type in ("Relu", "Clip") and n.op_type != rn.op_type:
                    cs = consumers.get(cs[0].output[0], [])
                if len(cs) != 1 or cs[0].op_type != "QuantizeLinear" or not cs[0].output:
                    continue
                via = (f", after the dropped DQ/Q pair: the reference's {cs[0].name or r!r}"
                       if n.op_type == rn.op_type else
                       f", fused by ORT with the reference's {cs[0].name or r!r}")
                r = cs[0].output[0]
                rv = np.asarray(ref.get(r)) if r in ref else None
                if rv is None:
                    continue
            if r in observed or r in out or ov.shape != rv.shape:
                continue
            if ov.dtype == rv.dtype:
                v, how = ov, ""
            elif ov.dtype == np.uint8 and rv.dtype == np.int8:
                v, how = (ov.astype(np.int16) - 128).astype(np.int8), "; uint8 codes - 128 (ORT QDQS8ToU8)"
            else:
                continue
            out[r] = (v, f"observed as {o!r} ({n.op_type} {n.name!r}{via}{how})", o)
    return out


# --------------------------------------------------------------------------- differences

def _ulps(ref, d):
    with np.errstate(all="ignore"):
        sp = np.spacing(np.abs(ref).astype(ref.dtype if ref.dtype.kind == "f" else np.float32))
        return d / sp.astype(np.float64)


def _dq_step(node, consts, shape):
    """Per-element step (the DQ scale) of a DequantizeLinear output, or None."""
    from .reference.quantize import expand_qparam
    if node is None or node.op_type != "DequantizeLinear" or len(node.input) < 2:
        return None
    s = consts.get(node.input[1])
    if s is None:
        return None
    a = _attrs(node)
    ax = a.get("axis", 1)
    nd = len(shape)
    try:
        return expand_qparam(np.asarray(s).astype(np.float64), shape, ax % nd if nd else 0,
                             a.get("block_size", 0), argname="x_scale")
    except Exception:  # noqa: BLE001
        return None


def _default_rtol(dt):
    """Relative tolerance (to max|reference|) for float tensors off a quantization grid."""
    name = str(np.dtype(dt))
    return {"float16": 5e-3, "bfloat16": 4e-2, "float64": 1e-12}.get(name, 1e-5)


def _measure(name, op, ref, obs, node, consts, float_rtol, tolerance):
    ref = np.asarray(ref)
    obs = np.asarray(obs)
    base = dict(name=name, op=op, dtype=str(ref.dtype), shape=tuple(ref.shape), size=int(ref.size))
    if ref.shape != obs.shape:
        return TensorDiff(**base, n_diff=int(ref.size), max_steps=float("inf"), unit="code",
                          diverged=True, cause="unknown",
                          detail=f"shape differs: reference {ref.shape}, observed {obs.shape}")
    from ._dtypes import is_integer, is_low_float
    from ._oprun import diff_steps
    if is_integer(ref.dtype) or is_low_float(ref.dtype):
        o = obs if obs.dtype == ref.dtype else obs.astype(ref.dtype)
        d = diff_steps("QuantizeLinear", ref, o)
        nd = int(np.count_nonzero(d))
        ms = float(d.max()) if d.size else 0.0
        fi = tuple(int(i) for i in np.unravel_index(int(np.argmax(d != 0)), d.shape)) if nd else None
        return TensorDiff(**base, n_diff=nd, max_steps=ms, unit="code", diverged=ms > tolerance,
                          first_index=fi)
    rf = ref.astype(np.float64)
    of = obs.astype(np.float64)
    with np.errstate(all="ignore"):
        ad = np.abs(rf - of)
    nan_r, nan_o = np.isnan(rf), np.isnan(of)
    ad = np.where(nan_r & nan_o, 0.0, np.where(nan_r ^ nan_o, np.inf, ad))
    ad = np.where(np.isinf(rf) & (rf == of), 0.0, ad)
    nd = int(np.count_nonzero(ad))
    fi = tuple(int(i) for i in np.unravel_index(int(np.argmax(ad != 0)), ad.shape)) if nd else None
    mabs = float(ad.max()) if ad.size else 0.0
    with np.errstate(all="ignore"):
        rel = np.where(ad == 0, 0.0, ad / np.maximum(np.abs(rf), np.finfo(np.float64).tiny))
        ul = _ulps(ref, ad) if ref.dtype.kind == "f" else ad
    mrel = float(rel.max()) if rel.size else 0.0
    mul = float(np.nanmax(np.where(ad == 0, 0.0, ul))) if ul.size else 0.0
    step = _dq_step(node, consts, ref.shape)
    if step is not None:
        with np.errstate(all="ignore"):
            st = np.where(ad == 0, 0.0, ad / step)
        ms = float(st.max()) if st.size else 0.0
        return TensorDiff(**base, n_diff=nd, max_steps=ms, unit="scale step",
                          diverged=bool(ms > tolerance and ms >= 0.5),
                          max_abs=mabs, max_rel=mrel, max_ulps=mul, first_index=fi)
    scale = float(np.nanmax(np.abs(rf[np.isfinite(rf)]))) if np.isfinite(rf).any() else 0.0
    rtol = _default_rtol(ref.dtype) if float_rtol is None else float_rtol
    div = bool(np.isinf(mabs) or mabs > rtol * max(scale, np.finfo(np.float32).tiny))
    return TensorDiff(**base, n_diff=nd, max_steps=None, unit="float", diverged=div,
                      max_abs=mabs, max_rel=mrel, max_ulps=mul, first_index=fi,
                      cause=("float accumulation order" if nd and not div else None))


# --------------------------------------------------------------------------- causes

def _frac_dist(v):
    """Distance of v (float64) to the nearest rounding boundary k + 0.5."""
    f = v - np.floor(v)
    return np.abs(f - 0.5)


class _Ctx:
    def __init__(self, m, ref, obs, profile, consts):
        self.m = m
        self.ref = ref
        self.obs = obs
        self.profile = profile
        self.consts = consts
        self.feeds = {}
        self.engine_nodes = {}      # tensor -> the engine graph's node writing it (ORT engine)
        self.engine_profile = None  # the engine's Profile (engine="reference:<profile>")
        self.producer = {}
        for n in m.graph.node:
            for o in n.output:
                if o:
                    self.producer[o] = n

    def value(self, t, side="ref"):
        if not t:
            return None
        if t in self.consts:
            return self.consts[t]
        if t in self.feeds:
            return self.feeds[t]
        src = self.ref if side == "ref" else self.obs
        return src.get(t)


def _ancestors(ctx, name, limit=100000):
    seen = set()
    stack = [name]
    while stack and len(seen) < limit:
        t = stack.pop()
        n = ctx.producer.get(t)
        if n is None:
            continue
        for i in n.input:
            if i and i not in seen:
                seen.add(i)
                stack.append(i)
    return seen


def _mask(ref, obs):
    r = np.asarray(ref)
    o = np.asarray(obs).astype(r.dtype) if np.asarray(obs).dtype != r.dtype else np.asarray(obs)
    if r.dtype.kind == "f":
        return ~((r == o) | (np.isnan(r) & np.isnan(o)))
    return r.astype(np.int64) != o.astype(np.int64)


def _cause_quantize(ctx, node, td):
    from ._dtypes import qrange
    x = ctx.value(node.input[0])
    s = ctx.value(node.input[1])
    if x is None or s is None:
        return "unknown", "the QuantizeLinear input is not available"
    zp = ctx.value(node.input[2]) if len(node.input) > 2 else None
    ref = ctx.ref[td.name]
    obs = ctx.obs[td.name]
    mk = _mask(ref, obs)
    a = _attrs(node)
    from .reference.quantize import expand_qparam
    xf = np.asarray(x).astype(np.float64)
    try:
        ax = a.get("axis", 1)
        sf = expand_qparam(np.asarray(s).astype(np.float64), xf.shape, ax % xf.ndim if xf.ndim else 0,
                           a.get("block_size", 0), argname="y_scale")
    except Exception:  # noqa: BLE001
        sf = np.asarray(s).astype(np.float64)
    with np.errstate(all="ignore"):
        v = np.broadcast_to(xf / sf, mk.shape)[mk]
    try:
        lo, hi = qrange(np.asarray(ref).dtype)
        z = 0 if zp is None else np.broadcast_to(np.asarray(zp).astype(np.int64), mk.shape)[mk] \
            if np.ndim(zp) else int(np.asarray(zp))
        r_m = np.asarray(ref).astype(np.int64)[mk]
        o_m = np.asarray(obs).astype(np.int64)[mk]
        at_edge = ((r_m == lo) | (r_m == hi) | (o_m == lo) | (o_m == hi))
        xm = np.broadcast_to(xf, mk.shape)[mk]
        special = ~np.isfinite(xm) | ~np.isfinite(v) | (np.abs(v) >= 2.0 ** 31)
        if special.size and np.any(special):
            n_nan = int(np.isnan(xm).sum())
            n_inf = int(np.isinf(xm).sum())
            n_big = int(special.sum()) - n_nan - n_inf
            pol = _policy_text(ctx)
            if np.all(special | (at_edge & ((v + z < lo - 0.5) | (v + z > hi + 0.5)))):
                return "NaN/Inf policy", (
                    f"the differing inputs include {n_nan} NaN, {n_inf} +-Inf and {n_big} beyond int32 "
                    f"after scaling: the NaN / Inf / overflow rule decides, not saturation{pol}")
        beyond = (v + z < lo - 0.5) | (v + z > hi + 0.5) | ~np.isfinite(v)
        if at_edge.size and np.all(at_edge & beyond):
            return "saturation", "the differing codes sit at qmin/qmax with the input beyond the range"
    except Exception:  # noqa: BLE001
        pass
    xo = ctx.obs.get(node.input[0])
    if xo is not None and np.shape(xo) == np.shape(x):
        xd = np.broadcast_to(np.asarray(xo).astype(np.float64) != xf, mk.shape)[mk]
        if xd.size and np.all(xd):
            dist = _frac_dist(v)
            return ("float accumulation order",
                    f"the float input {node.input[0]!r} differs between the runs at every differing "
                    f"code (within float tolerance) and sits {float(dist.max()):.2g} steps or less "
                    f"from a rounding boundary")
    dist = _frac_dist(v)
    if dist.size and np.all(dist == 0):
        return "tie", (f"{int(mk.sum())} input(s) are exact ties (x/s = k + 0.5): the rounding rule "
                       "decides" + _rounding_text(ctx))
    t32 = _fl32_ties(x, s, sf, mk)
    if t32:
        return "tie", (f"{int(mk.sum())} input(s) are exact ties in the profiles' float32 arithmetic "
                       f"({t32} = k + 0.5): the rounding rule decides" + _rounding_text(ctx))
    if dist.size and np.all(dist < _NEAR_TIE):
        if xo is None:
            return "tie", (f"every differing input is within {float(dist.max()):.2g} steps of a tie; "
                           f"the engine side has no {node.input[0]!r} (computed inside a fused kernel), "
                           "which rounds differently from the float simulation near ties "
                           "(onnxruntime#32132)")
        return "tie", (f"every differing input is within {float(dist.max()):.2g} steps of a tie: "
                       "division vs reciprocal multiply / float precision decides")
    bb = _bias_rounding_bound(ctx, node)
    if bb and xo is None and dist.size and np.all(dist < _NEAR_TIE + bb):
        return "tie", (f"every differing input is within {float(dist.max()):.2g} steps of a tie, inside "
                       f"the {bb:.2g}-step error of an int32 bias round(b/(sx*sw)): a fused QLinear "
                       "kernel (int32 bias, one fp32 multiplier) and the float simulation round "
                       "differently there (onnxruntime#32132)")
    return "unknown", ""


def _fl32_ties(x, s, sf, mk):
    """'fl32(x/s)' or 'fl32(x*fl32(1/s))' when that float32 value is an exact k + 0.5 at every
    differing code (how the float32 profiles compute Q), else ''."""
    try:
        x32 = np.asarray(x).astype(np.float32)
        s32 = np.asarray(sf).astype(np.float32)
        with np.errstate(all="ignore"):
            for label, q in (("fl32(x/s)", x32 / s32),
                             ("fl32(x*fl32(1/s))", x32 * (np.float32(1) / s32).astype(np.float32))):
                q = np.broadcast_to(np.asarray(q, np.float32), mk.shape)[mk].astype(np.float64)
                if q.size and np.all(np.isfinite(q)) and np.all(_frac_dist(q) == 0):
                    return label
    except Exception:  # noqa: BLE001
        pass
    return ""


def _both_profiles(ctx):
    from .profile import get_profile
    out = []
    try:
        out.append(("reference", get_profile(ctx.profile)))
    except Exception:  # noqa: BLE001
        pass
    if getattr(ctx, "engine_profile", None) is not None:
        out.append(("engine", ctx.engine_profile))
    return out


def _rounding_text(ctx):
    ps = _both_profiles(ctx)
    if not ps:
        return ""
    return " (" + ", ".join(f"{side} {p.name}: q_rounding={p.q_rounding}" for side, p in ps) + ")"


def _policy_text(ctx):
    ps = _both_profiles(ctx)
    if not ps:
        return ""
    return " (" + "; ".join(f"{side} {p.name}: q_nan={p.q_nan}, q_inf={p.q_inf}, q_overflow={p.q_overflow}"
                            for side, p in ps) + ")"


def _fixed_point_bound(ctx, op, ins):
    """(bound in output steps, right shift, profile name) of the gemmlowp/TFLite double rounding
    (Q31 multiplier, then a rounding right shift) when either side's profile requantizes in
    fixed point, else None."""
    fp = [p for _, p in _both_profiles(ctx) if getattr(p, "rq_method", "float") == "fixed_point"]
    if not fp:
        return None
    keys = {"QLinearConv": ("x_scale", "w_scale", "y_scale"), "QLinearMatMul": ("a_scale", "b_scale", "y_scale"),
            "QGemm": ("a_scale", "b_scale", "y_scale")}.get(op)
    if keys is None or any(k not in ins for k in keys):
        return None
    m = np.asarray(ins[keys[0]], np.float64) * np.asarray(ins[keys[1]], np.float64) / \
        np.asarray(ins[keys[2]], np.float64)
    m = float(np.max(np.abs(m)))
    if not (m > 0 and np.isfinite(m)):
        return None
    _, e = np.frexp(m)
    shift = max(0, -int(e))
    return 0.5 / 2.0 ** shift, shift, fp[0].name


def _bias_rounding_bound(ctx, qnode):
    """0.5 * sx * max(sw) / sy: how far (in output steps) quantizing the float bias of the
    Conv/Gemm feeding this Q (through Relu/Clip) moves the value; 0 if not applicable."""
    t = qnode.input[0]
    n = ctx.producer.get(t)
    if n is not None and n.op_type in ("Relu", "Clip"):
        n = ctx.producer.get(n.input[0])
    if n is None or n.op_type not in ("Conv", "Gemm", "MatMul"):
        return 0.0
    scales = []
    for inp in n.input[:2]:
        d = ctx.producer.get(inp)
        if d is None or d.op_type != "DequantizeLinear" or len(d.input) < 2:
            return 0.0
        s = ctx.consts.get(d.input[1])
        if s is None:
            return 0.0
        scales.append(float(np.max(np.asarray(s, np.float64))))
    sy = ctx.consts.get(qnode.input[1])
    if sy is None or np.size(sy) != 1:
        return 0.0
    return 0.5 * scales[0] * scales[1] / float(np.asarray(sy, np.float64).reshape(()))


_CONTRIB_INPUTS = {"QLinearAdd": ("A", "A_scale", "A_zero_point", "B", "B_scale", "B_zero_point",
                                  "C_scale", "C_zero_point"),
                   "QLinearMul": ("A", "A_scale", "A_zero_point", "B", "B_scale", "B_zero_point",
                                  "C_scale", "C_zero_point"),
                   "QLinearGlobalAveragePool": ("X", "x_scale", "x_zero_point", "y_scale", "y_zero_point")}


def _qlin_inputs(ctx, node):
    """Reference-side inputs of a QLinear-family node as ONNX-named dict, with the op name."""
    from ._oprun import OP_INPUTS
    op = node.op_type
    if op in _CONTRIB_INPUTS:
        ins = {nm: np.asarray(ctx.value(t)) for nm, t in zip(_CONTRIB_INPUTS[op], node.input)
               if t and ctx.value(t) is not None}
        return op, ins
    if op == "TensorRTFused":
        names = ("x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "B", "y_scale",
                 "y_zero_point")
        return op, {nm: np.asarray(ctx.value(t)) for nm, t in zip(names, node.input)
                    if t and ctx.value(t) is not None}
    if op not in OP_INPUTS:
        return None, None
    ins = {}
    for nm, t in zip(OP_INPUTS[op], node.input):
        v = ctx.value(t)
        if v is not None:
            ins[nm] = np.asarray(v)
    return op, ins


def _cause_integer_op(ctx, node, td):
    from ._dtypes import qrange
    op, ins = _qlin_inputs(ctx, node)
    ref = np.asarray(ctx.ref[td.name])
    obs = np.asarray(ctx.obs[td.name])
    mk = _mask(ref, obs)
    if op is None:
        return "unknown", ""
    at = _attrs(node)
    # int16 pair saturation (either side, u8 x s8 after ORT's s8 -> u8 shift)
    try:
        r = _cause_pair_saturation(ctx, node, op, ins, at, obs, mk)
        if r is not None:
            return r
    except Exception:  # noqa: BLE001
        pass
    if ref.dtype.kind in "iu" and op not in ("MatMulInteger", "ConvInteger"):
        lo, hi = qrange(ref.dtype)
        r_m, o_m = ref.astype(np.int64)[mk], obs.astype(np.int64)[mk]
        edge = (r_m == lo) | (r_m == hi) | (o_m == lo) | (o_m == hi)
        if edge.size and np.all(edge):
            return "saturation", "every differing code sits at qmin/qmax"
        v = _exact_requant_value(op, ins, at)
        if v is not None and v.shape == mk.shape:
            dist = _frac_dist(v[mk])
            if dist.size and np.all(dist == 0):
                return "tie", "the exact value (acc + bias) * sx*sw/sy is a tie k + 0.5 at every differing code"
            if dist.size and np.all(dist < _NEAR_TIE):
                if op == "TensorRTFused":
                    return "tie", (f"the exact value (acc*sx*sw + bias)/sy is within {float(dist.max()):.2g} "
                                   "steps of a tie at every differing code: TensorRT's epilogue (FMA, "
                                   "tactic-dependent float order, TensorRT#3009) and the float "
                                   "simulation round differently there")
                return "tie", (f"the exact value (acc + bias) * sx*sw/sy is within {float(dist.max()):.2g} "
                               "steps of a tie at every differing code: the fp32 multiplier / float "
                               "simulation decides (onnxruntime#32132)")
            fb = _fixed_point_bound(ctx, op, ins)
            if fb and dist.size and np.all(dist <= fb[0] * (1 + 1e-6) + 1e-6):
                return "tie", (f"the exact value (acc + bias) * sx*sw/sy is within {float(dist.max()):.2g} "
                               f"steps of a tie at every differing code, inside the fixed-point double "
                               f"rounding error 0.5/2^{fb[1]} = {fb[0]:.2g} steps of profile {fb[2]} "
                               f"(Q31 multiplier, then a rounding right shift by {fb[1]}: gemmlowp / TFLite)")
    ex = _explain(op, ins, obs, at) if op not in _CONTRIB_INPUTS and op != "TensorRTFused" else ""
    if ex:
        return "unknown", ex
    return "unknown", ""


_PAIR_MODE_TEXT = {
    True: "x86 vpmaddubsw pair sums in every u8 x s8 GEMM and convolution",
    "mlas": "x86 vpmaddubsw pair sums, as in ONNX Runtime's AVX2 MLAS kernels on CPUs without VNNI "
            "(depthwise QLinearConv exact)",
    "fbgemm_depthwise": "fbgemm's depthwise-convolution fast path (AVX2 vpmaddubsw code that "
                        "saturates on every x86 CPU, VNNI or not)",
}


def _pair_text(prof):
    """How ``prof`` saturates int16 pairs, in words."""
    mode = getattr(prof, "int16_pair_saturation", False)
    name = getattr(prof, "name", str(prof))
    return f"profile {name}: {_PAIR_MODE_TEXT.get(mode, 'int16_pair_saturation=' + repr(mode))}"


def _cause_pair_saturation(ctx, node, op, ins, at, obs, mk):
    """('int16 pair saturation', detail) when switching the reference profile's
    int16_pair_saturation on (the engine saturates) or off (the reference saturates) reproduces
    the observed codes; the op's operands are taken as the engine multiplies them (ORT's
    QDQS8ToU8 shift makes int8 activations uint8)."""
    from .profile import get_profile
    from ._oprun import run_reference
    from .model import _S8U8, _s8_to_u8_run
    A = ins.get("x", ins.get("a", ins.get("A")))
    B = ins.get("w", ins.get("b", ins.get("B")))
    if A is None or B is None:
        return None
    shifted = bool(node.name.endswith(_S8U8)) and op in ("QLinearConv", "QLinearMatMul", "QGemm") \
        and A.dtype == np.int8
    adt = np.dtype(np.uint8) if shifted else A.dtype
    if {adt, B.dtype} != {np.dtype(np.uint8), np.dtype(np.int8)}:
        return None
    p = get_profile(ctx.profile)

    def run(prof):
        r = _s8_to_u8_run(op, ins, at, prof) if shifted else run_reference(op, ins, at, profile=prof, kernels=True)
        return np.asarray(r[0] if isinstance(r, tuple) else r)

    def same(alt):
        return alt.shape == obs.shape and np.array_equal(alt[mk].astype(np.int64), obs[mk].astype(np.int64))

    eng = getattr(ctx, "engine_profile", None)
    via = " (after ORT's QDQS8ToU8 shift of the int8 activations to uint8)" if shifted else ""
    if p.int16_pair_saturation:
        if same(run(p.replace(int16_pair_saturation=False))):
            return "int16 pair saturation", (
                f"the reference saturates u8 x s8 int16 pair sums{via} ({_pair_text(p)}) and the "
                "engine does not: the reference with int16_pair_saturation=False reproduces the "
                "observed values")
        return None
    modes = [True, "fbgemm_depthwise"]
    em = getattr(eng, "int16_pair_saturation", None)
    if em in modes:
        modes.remove(em)
        modes.insert(0, em)
    for mode in modes:
        if same(run(p.replace(int16_pair_saturation=mode))):
            if eng is not None and getattr(eng, "int16_pair_saturation", False) == mode:
                who = _pair_text(eng)
            elif mode is True:
                who = _PAIR_MODE_TEXT[True] + ", or fbgemm"
            else:
                who = _PAIR_MODE_TEXT[mode]
            return "int16 pair saturation", (
                f"the engine saturates u8 x s8 int16 pair sums{via} ({who}): the reference with "
                f"int16_pair_saturation={mode!r} reproduces the observed values")
    return None


def _exact_requant_value(op, ins, at):
    """(acc + bias) * sx * sw / sy - y_zp in float64 (steps before rounding), or None.  (The
    accumulators come from refquant.<op>: a kernel where one covers the call, the reference's
    bits.)"""
    from ._dispatch import conv_integer, matmul_integer
    try:
        if op == "QLinearConv":
            conv_at = {k: at[k] for k in ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
                       if k in at}
            acc = conv_integer(ins["x"], ins["w"], ins.get("x_zero_point"), ins.get("w_zero_point"),
                               **conv_at).astype(np.float64)
            ws = np.asarray(ins["w_scale"]).astype(np.float64).reshape(-1)
            shp = (1, -1) + (1,) * (acc.ndim - 2)
            if "B" in ins:
                acc = acc + np.asarray(ins["B"]).astype(np.float64).reshape(shp)
            return acc * float(np.asarray(ins["x_scale"]).reshape(())) * (ws.reshape(shp) if ws.size > 1 else ws[0]) \
                / float(np.asarray(ins["y_scale"]).reshape(()))
        if op == "QLinearMatMul":
            acc = matmul_integer(ins["a"], ins["b"], ins.get("a_zero_point"), ins.get("b_zero_point")
                                 ).astype(np.float64)
            return acc * np.asarray(ins["a_scale"]).astype(np.float64) * \
                np.asarray(ins["b_scale"]).astype(np.float64) / float(np.asarray(ins["y_scale"]).reshape(()))
        if op == "QGemm":
            a = ins["A"].T if int(at.get("transA", 0)) else ins["A"]
            b = ins["B"].T if int(at.get("transB", 0)) else ins["B"]
            acc = matmul_integer(a, b, ins.get("a_zero_point"), ins.get("b_zero_point")).astype(np.float64)
            v = acc * float(at.get("alpha", 1.0)) * np.asarray(ins["a_scale"]).astype(np.float64) * \
                np.asarray(ins["b_scale"]).astype(np.float64).reshape(-1)
            if "C" in ins:      # C: int32 bias with scale alpha*sa*sb
                v = v + np.asarray(ins["C"]).astype(np.float64) * float(at.get("alpha", 1.0)) * \
                    np.asarray(ins["a_scale"]).astype(np.float64) * \
                    np.asarray(ins["b_scale"]).astype(np.float64).reshape(-1)
            return v / float(np.asarray(ins["y_scale"]).reshape(()))
        if op == "TensorRTFused":
            target = at.get("target")
            target = target.decode() if isinstance(target, bytes) else target
            if "y_scale" not in ins or at.get("activation") not in (None, b"", ""):
                return None
            sx = float(np.asarray(ins["x_scale"]).reshape(()))
            sw = np.asarray(ins["w_scale"]).astype(np.float64).reshape(-1)
            if target == "Conv":
                conv_at = {k: at[k] for k in ("auto_pad", "dilations", "group", "kernel_shape", "pads",
                                               "strides") if k in at}
                if isinstance(conv_at.get("auto_pad"), bytes):
                    conv_at["auto_pad"] = conv_at["auto_pad"].decode()
                acc = conv_integer(ins["x"], ins["w"], ins.get("x_zero_point"), ins.get("w_zero_point"),
                                   **conv_at).astype(np.float64)
                shp = (1, -1) + (1,) * (acc.ndim - 2)
            elif target == "MatMul" and np.ndim(ins["x"]) == 2 and np.ndim(ins["w"]) == 2:
                acc = matmul_integer(ins["x"], ins["w"], ins.get("x_zero_point"),
                                     ins.get("w_zero_point")).astype(np.float64)
                shp = (1, -1)
            else:
                return None
            v = acc * sx * (sw.reshape(shp) if sw.size > 1 else sw[0])
            if "B" in ins:
                v = v + np.asarray(ins["B"]).astype(np.float64).reshape(shp)
            return v / float(np.asarray(ins["y_scale"]).reshape(()))
        if op in ("QLinearAdd", "QLinearMul"):
            def deq(k):
                z = ins.get(f"{k}_zero_point")
                return (ins[k].astype(np.float64) - (0 if z is None else float(np.asarray(z).reshape(())))) \
                    * float(np.asarray(ins[f"{k}_scale"]).reshape(()))
            a, b = deq("A"), deq("B")
            v = (a + b) if op == "QLinearAdd" else (a * b)
            return v / float(np.asarray(ins["C_scale"]).reshape(()))
        if op == "QLinearGlobalAveragePool":
            x = ins["X"].astype(np.float64)
            cl = int(at.get("channels_last", 0))
            axes = tuple(range(1, x.ndim - 1)) if cl else tuple(range(2, x.ndim))
            z = ins.get("x_zero_point")
            m = x.mean(axis=axes, keepdims=True) - (0 if z is None else float(np.asarray(z).reshape(())))
            return m * float(np.asarray(ins["x_scale"]).reshape(())) / float(np.asarray(ins["y_scale"]).reshape(()))
    except Exception:  # noqa: BLE001
        return None
    return None


def _explain(op, ins, obs, at):
    try:
        from .explain import explain
    except ImportError:
        return ""
    try:
        r = explain(op, ins, obs, attributes=at)
        m = list(getattr(r, "matches", []) or [])
        return ("refquant.explain: reproduced by " + ", ".join(m)) if m else \
            ("refquant.explain: no profile reproduces the observed values" if str(r) else "")
    except Exception as exc:  # noqa: BLE001
        return f"refquant.explain failed: {type(exc).__name__}"


_EMULATED_ORT = ("QLinearConv", "QLinearMatMul", "QGemm", "MatMulIntegerToFloat")


def _engine_rewrite(ctx, node, td):
    """(cause, detail) when the engine wrote this tensor with a com.microsoft kernel that
    replaced a standard op the reference runs as written, else None."""
    en = ctx.engine_nodes.get(td.name)
    if en is None or node is None or not en.domain.startswith("com.microsoft") or \
            node.domain not in ("", "ai.onnx") or en.op_type == node.op_type or \
            node.op_type in ("QuantizeLinear", "DequantizeLinear"):
        return None
    from .model import _ORT_CONTRIB, _ORT_UNIT_OPS
    if en.op_type in _EMULATED_ORT or en.op_type in _ORT_CONTRIB or \
            en.op_type in _ORT_UNIT_OPS.values():
        return None             # a fusion the reference emulates (fuse mode "onnxruntime")
    from onnx import helper
    at = {a.name: helper.get_attribute_value(a) for a in en.attribute}
    if en.op_type == "MatMulNBits":
        lvl = int(at.get("accuracy_level", 0))
        how = (f"bits={at.get('bits', 4)}, block_size={at.get('block_size')}, accuracy_level={lvl}"
               + (": the kernel quantizes the float activations to int8 per block of "
                  f"{at.get('block_size')} along K (scale max|a|/127) and accumulates in integers"
                  if lvl == 4 else ""))
        return ("engine rewrite",
                f"ORT replaced the DQ(weight) -> {node.op_type} {node.name or td.name!r} by "
                f"com.microsoft MatMulNBits ({how}); the reference runs the float {node.op_type} "
                "on the dequantized weight (this rewrite is not emulated)")
    return ("engine rewrite",
            f"ORT computed it with com.microsoft {en.op_type} {en.name!r} where the reference runs "
            f"{node.op_type} (this rewrite is not emulated)")


def _analyze(ctx, td):
    node = ctx.producer.get(td.name)
    op = node.op_type if node is not None else ""
    rw = _engine_rewrite(ctx, node, td)
    if rw is not None:
        return rw
    try:
        if op == "QuantizeLinear":
            return _cause_quantize(ctx, node, td)
        if op in _QLIN:
            return _cause_integer_op(ctx, node, td)
        if td.unit == "float":
            r = ctx.ref.get(td.name)
            scale = float(np.nanmax(np.abs(np.asarray(r, np.float64)))) if r is not None and np.size(r) else 0.0
            rel = (td.max_abs or 0.0) / scale if scale else float("inf")
            small = rel < 100 * _default_rtol(np.asarray(r).dtype) if r is not None else False
            return ("float accumulation order" if small else "unknown",
                    f"max {td.max_ulps:g} ulps; max |diff| = {rel:.2g} of max|reference|")
        return "unknown", ""
    except Exception as exc:  # noqa: BLE001  (analysis is best effort)
        return "unknown", f"analysis failed: {type(exc).__name__}: {exc}"


def _assign_causes(ctx, tensors, local=None):
    """Cause of every diverged tensor.  With ``local`` (the reference replayed on the engine's
    own tensors), a tensor the replay reproduces is 'propagated'; one it does not has its own
    cause, analyzed on the engine's inputs.  Without it, any diverged ancestor means 'propagated'."""
    diverged = set()
    lctx = None
    if local is not None:
        lctx = _Ctx(ctx.m, local, ctx.obs, ctx.profile, ctx.consts)
        lctx.feeds = ctx.feeds
        lctx.engine_nodes = ctx.engine_nodes
        lctx.engine_profile = ctx.engine_profile
    for td in tensors:
        if not td.diverged:
            continue
        if td.detail and td.detail.startswith("shape differs"):
            diverged.add(td.name)       # nothing to analyse: keep the shape message
            continue
        anc = _ancestors(ctx, td.name)
        earlier = sorted(t for t in diverged if t in anc)
        if lctx is not None and td.local_diverged is not None:
            if not td.local_diverged and not earlier:
                fl = sorted(t.name for t in tensors if t.name in anc and t.unit == "float" and t.n_diff)
                td.cause = "float accumulation order"
                td.detail = ("replaying this layer on the engine's own inputs reproduces it: its float "
                             f"input(s) {', '.join(fl[:3]) or '(inside a fusion)'} differ by a few ulps "
                             "(within tolerance) and sit at a rounding boundary")
            elif not td.local_diverged:
                td.cause = "propagated from an earlier divergence"
                td.detail = ("replaying this layer on the engine's own input tensors reproduces it"
                             + (f" (upstream: {', '.join(earlier[:3])})" if earlier else ""))
            else:
                td.cause, td.detail = _analyze(lctx if earlier else ctx, td)
                if earlier:
                    td.detail = (f"independent of the upstream divergence ({', '.join(earlier[:3])}): "
                                 f"{td.local_n_diff} value(s) differ even on the engine's own inputs; "
                                 + td.detail)
        elif earlier:
            td.cause = "propagated from an earlier divergence"
            td.detail = f"upstream: {', '.join(earlier[:3])}"
        else:
            td.cause, td.detail = _analyze(ctx, td)
        diverged.add(td.name)


def _replay(model, inputs, prof, fz, ref, obs, ctx, tensors, float_rtol, tolerance, notes):
    """Run the reference once more with every observed tensor overriding the computed one, so
    each layer sees the engine's inputs; fill td.local_* from it.  Returns the local values."""
    over = {}
    for td in tensors:
        o = np.asarray(obs[td.name])
        r = np.asarray(ref[td.name])
        if o.shape == r.shape and o.dtype.kind == r.dtype.kind:
            over[td.name] = o.astype(r.dtype, copy=False)
    try:
        local, _, _ = _execute(model, inputs, prof, fz, overrides=over)
    except Exception as exc:  # noqa: BLE001
        notes.append(f"layer replay on the engine's tensors failed: {type(exc).__name__}: {exc}")
        return None
    for td in tensors:
        if td.name not in local or td.name not in over:
            continue
        lt = _measure(td.name, td.op, local[td.name], obs[td.name], ctx.producer.get(td.name),
                      ctx.consts, float_rtol, tolerance)
        td.local_n_diff = lt.n_diff
        td.local_max_steps = lt.max_steps
        td.local_diverged = lt.diverged
    return local


# --------------------------------------------------------------------------- main API

def compare_model(model, inputs, *, engine=None, observed=None, profile=None,
                  ort_optimization="disabled", fuse="auto", tolerance=0, float_rtol=None, replay=True):
    """Compare every observable tensor of an engine run with the reference.

    model            ModelProto or path.
    inputs           {graph input name: array}.
    engine           "onnxruntime" (run now, see the module docstring), or "reference:<profile>"
                     (the whole model under another profile, e.g. "reference:onnxruntime-avx2":
                     what an AVX2-only CPU computes, per layer) -- or give ``observed``.
    observed         {tensor name: array} recorded from any engine.
    profile          reference profile (default: "onnxruntime" / "onnxruntime-avx2" for the ORT
                     engine by this CPU's features, else "onnx").
    ort_optimization "disabled" | "basic" | "extended" | "all" (engine="onnxruntime").
    fuse             reference fuse mode; "auto" = the one matching ``ort_optimization`` for the ORT
                     engine, None for ``observed``.
    tolerance        steps a quantized tensor may differ before it counts as diverged (default 0).
    float_rtol       relative tolerance (to max|reference|) for float tensors off a grid (None:
                     by dtype, see the module docstring).
    replay           also replay every layer on the engine's own input tensors (one more reference
                     run with the observed tensors as overrides): a diverged tensor the replay
                     reproduces is "propagated", one it does not is an independent divergence
                     (``local_n_diff`` / ``local_max_steps``; listed in ``independent``).

    Returns a :class:`CompareResult`.
    """
    from .profile import get_profile
    if (engine is None) == (observed is None):
        raise ValueError("engine, observed: give exactly one (an engine to run, or observed arrays)")
    for name, v in (("tolerance", tolerance), ("float_rtol", float_rtol)):
        if v is not None and not (np.isfinite(v) and v >= 0):
            raise ValueError(f"{name}: expected a finite number >= 0, got {v!r}")
    model = load_model(model)
    notes = []
    aliases = {}
    engine_graphs = []
    engine_prof = None
    bad_inputs = set()
    if isinstance(engine, str) and engine.startswith("reference:"):
        # another machine / engine emulated by a profile: e.g. "reference:onnxruntime-avx2"
        other = get_profile(engine.split(":", 1)[1])
        prof = get_profile(profile if profile is not None else "onnxruntime")
        fz = (_LEVEL_FUSE[ort_optimization] if ort_optimization in ORT_LEVELS else None) \
            if fuse == "auto" else _normalize_fuse(fuse)
        ref, m, fusions = _execute(model, inputs, prof, fz)
        obs, _, _ = _execute(model, inputs, other, fz)
        engine_name = f"reference profile {other.name}"
        engine_prof = other
        engine = None
        observed = obs
        emulated = True
    else:
        emulated = False
    if emulated:
        pass
    elif engine is not None:
        if engine != "onnxruntime":
            raise ValueError(f"engine: 'onnxruntime' (run live) or 'reference:<profile>' (another "
                             f"machine's arithmetic); got {engine!r} (record the other engine's "
                             "tensors and pass them as observed)")
        if ort_optimization not in ORT_LEVELS:
            raise ValueError(f"ort_optimization: expected one of {tuple(ORT_LEVELS)}, got "
                             f"{ort_optimization!r}")
        prof = get_profile(profile if profile is not None else default_ort_profile())
        fz = _LEVEL_FUSE[ort_optimization] if fuse == "auto" else _normalize_fuse(fuse)
        ref, m, fusions = _execute(model, inputs, prof, fz)
        obs, om = observe_onnxruntime(model, inputs, ort_optimization)
        om_ext = om
        engine_graphs.append(om)
        if ort_optimization == "all":
            try:
                om_ext = _ort_optimized_graph(model, "extended")
                al = layout_aliases(om, om_ext, obs)
            except Exception as exc:  # noqa: BLE001  (alignment is best effort)
                al = {}
                notes.append(f"layout alignment failed: {type(exc).__name__}: {exc}")
            for k, (v, note) in al.items():
                if k not in obs:
                    obs[k] = v
                    aliases[k] = note
        try:
            rl = rename_aliases(om_ext, m, obs, ref)
        except Exception as exc:  # noqa: BLE001  (alignment is best effort)
            rl = {}
            notes.append(f"rename alignment failed: {type(exc).__name__}: {exc}")
        for k, (v, note, src) in rl.items():
            if k in ref and k not in obs:
                obs[k] = v
                aliases[k] = note if src not in aliases else f"{note}; {aliases[src]}"
        # layout-aligned tensors under names the reference lacks were only a step of the above
        obs = {k: v for k, v in obs.items() if k not in aliases or (
            k in ref and np.shape(ref[k]) == np.shape(v))}
        aliases = {k: a for k, a in aliases.items() if k in obs}
        import onnxruntime
        engine_name = f"onnxruntime {onnxruntime.__version__} ({ort_optimization})"
        if any(n.op_type.startswith("Nhwc") or n.domain == "com.microsoft.nchwc" or
               (n.op_type == "QLinearConv" and n.domain == "com.microsoft") for n in om.graph.node):
            notes.append("ORT_ENABLE_ALL changes layouts (NHWC QLinearConv, NhwcMaxPool): tensors "
                         "between layout changes are renamed; those whose node ORT kept are aligned "
                         "by node name, the others are not compared")
    else:
        if not isinstance(observed, dict):
            raise TypeError(f"observed: expected a dict {{tensor name: array}}, got {type(observed).__name__}")
        prof = get_profile(profile if profile is not None else "onnx")
        fz = None if fuse == "auto" else _normalize_fuse(fuse)
        ref, m, fusions = _execute(model, inputs, prof, fz)
        obs = {k: np.asarray(v) for k, v in observed.items()}
        engine_name = "observed"
        bad_inputs = _check_observed(model, inputs, ref, {i.name for i in m.graph.initializer} |
                                     {n.output[0] for n in m.graph.node if n.op_type == "Constant"},
                                     obs, notes)
    from onnx import numpy_helper
    consts = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Constant":
            from .model import _const_value
            v = _const_value(n)
            if v is not None:
                consts[n.output[0]] = v
    ctx = _Ctx(m, ref, obs, prof, consts)
    ctx.engine_profile = engine_prof
    ctx.feeds = {k: np.asarray(v) for k, v in inputs.items()}
    for g in engine_graphs:
        for n in g.graph.node:
            for o in n.output:
                if o and o in ref:
                    ctx.engine_nodes.setdefault(o, n)
    tensors = []
    for name, rv in ref.items():
        if name not in obs or name in consts:
            continue
        node = ctx.producer.get(name)
        op = node.op_type if node is not None else "?"
        if node is not None and node.domain not in ("", "ai.onnx"):
            op = f"{node.op_type}"
        if isinstance(rv, (list, tuple)):
            continue
        td = _measure(name, op, rv, obs[name], node, consts, float_rtol, tolerance)
        if name in aliases:
            td.observed_as = aliases[name]
        tensors.append(td)
    local = None
    if replay and any(t.diverged for t in tensors):
        local = _replay(model, inputs, prof, fz, ref, obs, ctx, tensors, float_rtol, tolerance, notes)
    _assign_causes(ctx, tensors, local)
    first = next((t.name for t in tensors if t.diverged), None)
    only_ref = [n for n in ref if n not in obs and n not in consts]
    graph_in = {i.name for i in model.graph.input}
    only_obs = [n for n in obs if n not in ref and (n not in graph_in or n in bad_inputs)]
    if aliases:
        notes.append(f"{len(aliases)} tensor(s) that ORT renamed (NHWC layout transform, QDQS8ToU8) "
                     "aligned by node name (observed_as)")
    return CompareResult(first, tensors, engine_name, prof.name, fz, only_ref, only_obs, fusions, notes,
                         profile_obj=prof)


def _check_observed(model, inputs, ref, consts, obs, notes):
    """Validate user-recorded tensors against the reference run: ValueError when no observed
    name is a tensor of the model; returns the graph inputs whose observed values differ from ``inputs`` (noted)."""
    graph_in = {i.name for i in model.graph.input}
    names = [n for n in ref if n not in consts]
    hits = [n for n in obs if n in ref and n not in consts]
    if obs and not hits:
        def few(xs):
            xs = list(xs)
            return ", ".join(repr(x) for x in xs[:8]) + (" ..." if len(xs) > 8 else "")
        raise ValueError(f"observed: none of the {len(obs)} observed name(s) is a tensor of the model "
                         f"(observed: {few(obs)}; the model's tensors: {few(names)}); record the "
                         "engine's tensors under their ONNX tensor names")
    differ = set()
    for n in obs:
        if n in graph_in and n not in ref and n in inputs:
            a, b = np.asarray(obs[n]), np.asarray(inputs[n])
            if a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
                differ.add(n)
                notes.append(f"observed graph input {n!r} differs from the given inputs (the "
                             "reference ran on the given inputs; was the engine fed the same data?)")
    return differ


# --------------------------------------------------------------------------- CLI

def _load_npz(path, argname):
    from ._cliutil import load_arrays
    return load_arrays(path, argname, npy=False)


def add_parser(subparsers):
    import argparse
    p = subparsers.add_parser(
        "compare", help="whole model: first tensor where an engine leaves the reference",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX model")
    p.add_argument("--inputs", required=True, metavar="INPUTS.npz",
                   help="graph inputs, keyed by input name")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--engine", metavar="ENGINE",
                   help="'onnxruntime' (run it now) or 'reference:PROFILE' (the model under another "
                        "profile, e.g. reference:onnxruntime-avx2 = an AVX2 CPU without VNNI)")
    g.add_argument("--observed", metavar="OBSERVED.npz",
                   help="tensors recorded from an engine, keyed by tensor name")
    p.add_argument("--profile", default=None,
                   help="reference profile (default: onnxruntime[-avx2] for --engine onnxruntime, "
                        "onnx for --observed)")
    p.add_argument("--ort-optimization", default="disabled", choices=list(ORT_LEVELS),
                   help="ONNX Runtime graph optimization level (default: disabled)")
    p.add_argument("--fuse", default="auto",
                   choices=["auto", "none", "onnxruntime-basic", "onnxruntime", "tensorrt"],
                   help="reference fusion mode (default auto: matches --ort-optimization; none "
                        "for --observed)")
    from ._cliutil import nonnegative_float
    p.add_argument("--tolerance", type=nonnegative_float, default=0, metavar="STEPS",
                   help="steps a quantized tensor may differ before it counts (default 0)")
    p.add_argument("--float-rtol", type=nonnegative_float, default=None,
                   help="relative tolerance (to max|reference|) for float tensors off a quantization "
                        "grid (default by dtype: 1e-5 float32, 5e-3 float16, 4e-2 bfloat16)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the report as JSON ('-': stdout)")
    p.add_argument("--html", default=None, metavar="FILE", help="write the report as HTML")
    p.add_argument("--quiet", action="store_true", help="print only the first divergence line")
    p.add_argument("--no-replay", action="store_true",
                   help="skip replaying each layer on the engine's own tensors (then every "
                        "divergence after the first counts as propagated)")
    p.add_argument("--save-reference", default=None, metavar="FILE.npz",
                   help="also write the reference's tensors (the fuse mode used) to an .npz")
    p.set_defaults(_run=run)
    return p


def run(args):
    try:
        from ._cliutil import check_writable
        check_writable(args.json, "--json")
        check_writable(args.html, "--html")
        check_writable(args.save_reference, "--save-reference")
        inputs = _load_npz(args.inputs, "--inputs")
        observed = _load_npz(args.observed, "--observed") if args.observed else None
        fuse = None if args.fuse == "none" else args.fuse
        res = compare_model(args.model, inputs, engine=args.engine, observed=observed,
                            profile=args.profile, ort_optimization=args.ort_optimization, fuse=fuse,
                            tolerance=args.tolerance, float_rtol=args.float_rtol,
                            replay=not args.no_replay)
        if args.save_reference:
            from .model import run_model
            vals = run_model(args.model, inputs, profile=res.profile_obj, fuse=res.fuse)
            np.savez(args.save_reference, **{k: v for k, v in vals.items()
                                             if isinstance(v, np.ndarray)})
    except (ValueError, TypeError, OSError, ImportError) as exc:
        from ._cliutil import import_error_message
        print(f"refquant compare: {import_error_message(exc)}", file=sys.stderr)
        return 2
    if args.json == "-":
        print(json.dumps(res.to_dict(), indent=1))
    else:
        if args.quiet:
            print(f"first divergence: {res.first_divergence or 'none'}")
        else:
            print(res)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res.to_dict(), f, indent=1)
    if args.html:
        with open(args.html, "w") as f:
            f.write(res.to_html())
    return 1 if res.first_divergence else 0
