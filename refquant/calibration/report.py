"""Text table and self-contained HTML page (inline SVG histogram, no plotting dependency)."""
from __future__ import annotations

import html

import numpy as np

from ._common import CalibrationResult

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"]


def _f(v):
    a = np.asarray(v)
    if a.ndim == 0:
        return f"{float(a):.9g}" if a.dtype.kind == "f" or a.dtype.kind == "V" else str(int(a.astype(np.int64)))
    return "[" + ", ".join(_f(x) for x in a.ravel()[:6]) + (", ..." if a.size > 6 else "") + "]"


def _zp(r: CalibrationResult):
    z = np.asarray(r.zero_point)
    try:
        return z.astype(np.int64)
    except (TypeError, ValueError):
        return z.astype(np.float32)


def table(results) -> str:
    """Fixed-width side-by-side table; refused pairs listed with their reason."""
    rows = [("tool", "method", "rmin", "rmax", "scale", "zero_point")]
    errs = []
    for r in results:
        if isinstance(r, tuple):
            errs.append(f"  {r[0]} {r[1]}: {r[2]}")
            continue
        rows.append((r.tool, r.method, _f(r.rmin), _f(r.rmax), _f(r.scale), _f(_zp(r))))
    w = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    if errs:
        lines.append("")
        lines.append("not applicable:")
        lines.extend(errs)
    return "\n".join(lines)


def _svg_histogram(x, results, width=900, height=360, bins=200) -> str:
    x = np.asarray(x, np.float64).ravel()
    x = x[np.isfinite(x)]                      # the page plots what it can; calibrate() refuses the rest
    marks = []
    for r in results:
        if isinstance(r, tuple):
            continue
        a, b = np.asarray(r.rmin, np.float64), np.asarray(r.rmax, np.float64)
        if a.ndim:
            a, b = a.min(), b.max()
        if np.isfinite(a) and np.isfinite(b):
            marks.append((f"{r.tool} {r.method}", float(a), float(b)))
    ends = [float(x.min()), float(x.max())] if x.size else []
    for _, a, b in marks:
        ends += [a, b]
    lo, hi = (min(ends), max(ends)) if ends else (-1.0, 1.0)
    if hi == lo:
        lo, hi = lo - 1.0, hi + 1.0
    pad = 0.02 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    ml, mr, mt, mb = 60, 20, 20, 40
    pw, ph = width - ml - mr, height - mt - mb
    logc = np.log10(counts + 1.0)
    top = max(float(logc.max()), 1e-9)

    def X(v):
        return ml + (v - lo) / (hi - lo) * pw

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 22 * len(marks)}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#999"/>']
    for c, e0, e1 in zip(logc, edges[:-1], edges[1:]):
        if c <= 0:
            continue
        h = c / top * ph
        parts.append(f'<rect x="{X(e0):.2f}" y="{mt + ph - h:.2f}" width="{max(X(e1) - X(e0) - 0.3, 0.3):.2f}" '
                     f'height="{h:.2f}" fill="#9ab"/>')
    for t in np.linspace(lo, hi, 7):
        parts.append(f'<text x="{X(t):.1f}" y="{mt + ph + 16}" text-anchor="middle">{t:.4g}</text>')
    parts.append(f'<text x="14" y="{mt + ph / 2}" transform="rotate(-90 14 {mt + ph / 2})" '
                 f'text-anchor="middle">log10(count + 1)</text>')
    if lo < 0 < hi:
        parts.append(f'<line x1="{X(0):.2f}" y1="{mt}" x2="{X(0):.2f}" y2="{mt + ph}" stroke="#000" '
                     f'stroke-dasharray="2,3"/>')
    for k, (name, a, b) in enumerate(marks):
        col = _COLORS[k % len(_COLORS)]
        off = (k % 5) * 1.5
        for v in (a, b):
            parts.append(f'<line x1="{X(v) + off:.2f}" y1="{mt}" x2="{X(v) + off:.2f}" y2="{mt + ph}" '
                         f'stroke="{col}" stroke-width="1.5"><title>{html.escape(name)}: {v:.9g}</title></line>')
        y = height + 22 * k + 4
        parts.append(f'<line x1="{ml}" y1="{y}" x2="{ml + 24}" y2="{y}" stroke="{col}" stroke-width="3"/>')
        parts.append(f'<text x="{ml + 30}" y="{y + 4}">{html.escape(name)}: [{a:.6g}, {b:.6g}]</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _plottable(data_batches) -> np.ndarray:
    """The finite float32 values of every batch that converts to float (others are skipped)."""
    parts = []
    for b in data_batches:
        try:
            a = np.asarray(b)
            if a.dtype.kind not in "fiub" and a.dtype.names is None and a.dtype.kind != "V":
                continue
            with np.errstate(all="ignore"):
                a = a.astype(np.float32).ravel()
        except (TypeError, ValueError):
            continue
        parts.append(a[np.isfinite(a)])
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def html_page(data_batches, results, *, title="refquant calibrate") -> str:
    x = _plottable(data_batches)
    svg = _svg_histogram(x, results)
    summary = (f"min {float(x.min()):.9g}, max {float(x.max()):.9g}" if x.size else "no finite values")
    rows = []
    for r in results:
        if isinstance(r, tuple):
            rows.append(f"<tr><td>{html.escape(r[0])}</td><td>{html.escape(r[1])}</td>"
                        f"<td colspan='4'><i>{html.escape(r[2])}</i></td></tr>")
            continue
        notes = "<br>".join(html.escape(n) for n in r.notes)
        rows.append(f"<tr><td>{r.tool}</td><td>{r.method}</td><td>{_f(r.rmin)}</td><td>{_f(r.rmax)}</td>"
                    f"<td>{_f(r.scale)}</td><td>{_f(_zp(r))}</td><td>{notes}</td></tr>")
    from .._json import dumps as _strict_dumps
    dump = _strict_dumps([r.to_dict() for r in results if not isinstance(r, tuple)], indent=1)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}}pre{{font-size:11px}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>{x.size} finite values in {len(data_batches)} batch(es); {summary}.
Vertical lines: the range each tool's calibrator chose (dotted: 0).</p>
{svg}
<h2>Chosen ranges and quantization parameters</h2>
<table><tr><th>tool</th><th>method</th><th>rmin</th><th>rmax</th><th>scale</th><th>zero point</th><th>notes</th></tr>
{''.join(rows)}
</table>
<h2>JSON</h2><pre>{html.escape(dump)}</pre>
</body></html>
"""
