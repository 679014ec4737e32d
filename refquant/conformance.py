"""``refquant conformance``: compare engine outputs on the golden cases with the reference.

For every case and every engine output (recorded in the case file, or produced now with
``--live``), two questions are answered:

1. **Spec conformance** — does the engine equal the reference under ``--profile``
   (default ``onnx``, the ONNX specification)?  If not: how many elements differ, by how many
   output steps, and (via ``refquant.explain`` when available) which arithmetic choice explains it.
2. **Model check** — does refquant's profile for that engine reproduce its output bit for bit?
   A failure here means refquant mis-models the engine; the command then exits with status 1.

A case the ``--profile`` itself cannot run (e.g. ``tensorrt`` and ConvInteger, or a non-zero zero
point) is listed as "not applicable to this profile" and not compared; it is no mis-model.

``--strict`` also fails on spec deviations (for testing an engine that must conform).
``--engine`` takes the refquant.engines names, tensorrt, the groups torch and tflite, or any
engine recorded in the cases; ``--op`` an ONNX op name (any letter case).

Exit status: 0 when refquant reproduces every engine output (and, with ``--strict``, every one
equals the spec); 1 when an output is not reproduced (a mis-model, or an engine error -- one
raised now with ``--live`` or recorded in the case file by ``refquant golden record``) or,
with ``--strict``, deviates from the spec; 2 on bad input or when nothing was compared: an
unknown --engine or --op, a bad --cases directory, no cases, an unreadable case file (a
truncated or corrupt .npz; a .npz that is no golden case at all is skipped with a warning), a
case the reference refuses (an unknown op, an invalid opset or input), ``--live`` with an
engine that cannot run here (tensorrt without its package), or no recorded (or, with
``--live``, runnable) outputs of the engines asked for -- a gate that compares nothing fails.
``--json FILE`` (``-``: stdout, the text report then goes to stderr) writes ``{"verdict",
"n_cases", "engines", "results": [...], "summary": [...]}`` (``verdict``: "pass", "fail" or
"error", as the exit status 0, 1, 2; ``n_reproduced``, ``n_not_reproduced``,
``n_not_modelled``, ``n_spec_match`` count the outputs);
``--html FILE`` a table.  The JSON is strict (no ``Infinity``/``NaN`` tokens): a non-finite
number, e.g. ``max_steps`` of an output whose shape differs or that holds NaN where the
reference does not, is written as the string ``"inf"`` (``"-inf"``, ``"nan"``).
"""
from __future__ import annotations

import html
import json
import sys
import time

import numpy as np

from . import _json
from ._oprun import diff_steps, run_reference
from .golden import default_cases_dir, load_cases
from .profile import ProfileError, get_profile

__all__ = ["check_case", "run_conformance", "add_parser", "run"]


def _engine_profile(engine):
    try:
        from .engines import ENGINES
        name = ENGINES[engine].profile if engine in ENGINES else engine
    except ImportError:  # pragma: no cover
        name = engine
    try:
        return get_profile(name)
    except ValueError:
        return None


def _compare(op, expected, observed, inputs, attributes):
    """(n_diff, max_steps, n_elements) comparing expected with observed (tuples allowed)."""
    if isinstance(expected, tuple):
        tot, mx, n = 0, 0.0, 0
        for e, o in zip(expected, observed):
            d, m, k = _compare(op if e is expected[0] else "DequantizeLinear_param", e, o, inputs,
                               attributes)
            tot, mx, n = tot + d, max(mx, m), n + k
        return tot, mx, n
    e = np.asarray(expected)
    o = np.asarray(observed)
    if e.shape != o.shape:
        return int(e.size), float("inf"), int(e.size)
    if op == "DequantizeLinear_param":
        same = (e.astype(np.float64) == o.astype(np.float64)) | (np.isnan(e.astype(np.float64))
                                                                 & np.isnan(o.astype(np.float64)))
        nd = int((~same).sum())
        return nd, (float("inf") if nd else 0.0), int(e.size)
    d = diff_steps(op, e, o.astype(e.dtype) if o.dtype != e.dtype else o, inputs, attributes)
    nd = int((d != 0).sum())
    return nd, float(d.max()) if d.size else 0.0, int(e.size)


def _explain(case, observed):
    try:
        from .explain import explain
    except ImportError:
        return None
    try:
        with np.errstate(all="ignore"):
            r = explain(case.op, case.inputs, observed, attributes=case.attributes, opset=case.opset)
        d = r.to_dict()
    except Exception as exc:  # explanation is best effort; the comparison stands on its own
        return {"error": f"{type(exc).__name__}: {exc}"}
    summary = ""
    if d.get("suggestions"):
        s0 = d["suggestions"][0]
        summary = ("one change reproduces it: " + (f"{s0.get('profile')} with {s0.get('field')}="
                                                   f"{s0.get('to')!r}" if isinstance(s0, dict) else str(s0)))
    elif d.get("nearest"):
        near = next((p for p in d.get("profiles", []) if p.get("profile") == d["nearest"]), {})
        classes = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in
                            sorted((near.get("classes") or {}).items(), key=lambda kv: -kv[1]))
        summary = (f"nearest {d['nearest']}: {near.get('n_diff', '?')} differ"
                   + (f" ({classes})" if classes else ""))
    return {"matches": list(d.get("matches") or []), "nearest": d.get("nearest"),
            "suggestions": d.get("suggestions") or [], "summary": summary}


def known_engines():
    """Engine names ``--engine`` accepts: the refquant.engines registry, tensorrt (recorded on
    an NVIDIA host) and the group names (torch, tflite)."""
    from .golden import ENGINE_GROUPS
    try:
        from .engines import ENGINES
        names = list(ENGINES)
    except ImportError:  # pragma: no cover
        names = []
    return names + [n for n in ("tensorrt", *ENGINE_GROUPS) if n not in names]


def _check_engines(engines, cases):
    """Group names expanded; an unknown name (neither known nor recorded in the cases) raises."""
    from .golden import expand_engines
    recorded = {e for c in cases for e in c.outputs}
    known = known_engines()
    bad = [e for e in engines if e not in known and e not in recorded]
    if bad:
        raise ValueError(f"--engine: unknown engine{'s' if len(bad) > 1 else ''} "
                         f"{', '.join(map(repr, bad))}; known: {', '.join(known)}")
    return expand_engines(engines)


def _canonical_op(op, cases_dir=None):
    """``op`` spelt as the ONNX op name (matched case-insensitively); unknown -> ValueError."""
    if op is None:
        return None
    from .engines._onnx_model import OP_INPUTS
    names = list(OP_INPUTS)
    for n in names:
        if n.lower() == str(op).lower():
            return n
    raise ValueError(f"--op: unknown op {op!r}; valid: {', '.join(names)}")


def check_case(case, engine, observed, *, profile="onnx", explain=True):
    """Compare one engine output with the reference; returns a JSON-ready dict."""
    res = {"case": case.name, "op": case.op, "engine": engine, "opset": case.opset,
           "tags": list(case.tags)}
    try:
        spec = run_reference(case.op, case.inputs, case.attributes, profile=profile,
                             opset=case.opset)
    except ProfileError as exc:    # --profile cannot run this case: nothing to say about the engine
        res.update(status="not-applicable", error=str(exc))
        return res
    except Exception as exc:       # the reference refuses the case itself: a bad case file
        res.update(status="spec-error", error=f"the reference refuses the case: {type(exc).__name__}: {exc}")
        return res
    nd, mx, n = _compare(case.op, spec, observed, case.inputs, case.attributes)
    res.update(n_elements=n, spec_match=(nd == 0), n_diff=nd, max_steps=mx)
    prof = _engine_profile(engine)
    if prof is None:
        res["profile"] = None
        res["profile_match"] = None
    else:
        res["profile"] = prof.name
        try:
            own = run_reference(case.op, case.inputs, case.attributes, profile=prof,
                                opset=case.opset)
            pd, pm, _ = _compare(case.op, own, observed, case.inputs, case.attributes)
            res["profile_match"] = pd == 0
            res["profile_n_diff"] = pd
            res["profile_max_steps"] = pm
        except Exception as exc:  # the profile cannot express this op/input: say so
            res["profile_match"] = None
            res["profile_error"] = f"{type(exc).__name__}: {exc}"
    if nd and explain:
        res["explanation"] = _explain(case, observed)
    return res


def run_conformance(cases_dir=None, *, engines=None, op=None, profile="onnx", live=False,
                    explain=True, progress=None):
    """Run the comparison over a case directory; returns the JSON-ready report dict (its
    ``verdict`` as the CLI's exit status: "pass", "fail", or "error" for an unreadable case
    file, a case the reference refuses, or nothing compared).  ``engines``: a name or a list
    of names (group names such as torch expand).  No case (an empty directory, an --op with
    none) raises ValueError."""
    op = _canonical_op(op, cases_dir)
    skipped = []
    cases = load_cases(cases_dir, op=op, skipped=skipped)
    get_profile(profile)  # validate early
    if not cases:
        raise ValueError(f"no cases found in {cases_dir or default_cases_dir()}"
                         + (f" for {op}" if op else "") + _unreadable_note(skipped))
    if isinstance(engines, str):
        engines = [engines]
    if engines:
        engines = _check_engines(engines, cases)
    if live and engines and "tensorrt" in engines:
        from .golden import _tensorrt_version
        _tensorrt_version()      # RuntimeError (one line) where the tensorrt package is missing
    results, versions = [], {}
    t0 = time.time()
    for i, c in enumerate(cases):
        if progress:
            progress(i, len(cases), c)
        if live:
            from . import engines as _eng
            for e in engines or []:
                try:
                    if e == "tensorrt":   # pragma: no cover - an NVIDIA GPU host with TensorRT
                        from .golden import _record_tensorrt
                        out = _record_tensorrt(c)
                    else:
                        out = _eng.run(e, c.op, c.inputs, c.attributes,
                                       opset=c.opset if c.op != "QGemm" else None)
                except _eng.EngineUnsupported:
                    continue
                except _eng.EngineUnavailable as exc:
                    raise RuntimeError(str(exc)) from None
                except Exception as exc:
                    results.append({"case": c.name, "op": c.op, "engine": e, "status": "engine-error",
                                    "error": f"{type(exc).__name__}: {exc}"})
                    continue
                versions[e] = _eng.available().get(e) if e != "tensorrt" else _tensorrt_ver()
                results.append(check_case(c, e, out, profile=profile, explain=explain))
        else:
            for e, out in sorted(c.outputs.items()):
                if engines and e not in engines:
                    continue
                versions[e] = c.output_meta.get(e, {}).get("version")
                results.append(check_case(c, e, out, profile=profile, explain=explain))
            # an error the engine raised when the outputs were recorded (no output stored)
            for e, m in sorted(c.output_meta.items()):
                note = str((m or {}).get("note") or "")
                if e in c.outputs or not note.startswith("error:") or (engines and e not in engines):
                    continue
                versions[e] = m.get("version")
                first = note[6:].strip().splitlines()[0] if note[6:].strip() else "?"
                results.append({"case": c.name, "op": c.op, "engine": e, "status": "engine-error",
                                "error": f"engine error when recorded: {first}", "detail": note[6:].strip()})
    summary = {}
    for r in results:
        key = f"{r['op']}|{r['engine']}"
        s = summary.setdefault(key, {"op": r["op"], "engine": r["engine"], "cases": 0,
                                     "spec_match": 0, "profile_match": 0, "profile_checked": 0,
                                     "max_steps": 0.0, "errors": 0, "not_applicable": 0,
                                     "not_modelled": 0})
        if r.get("status") == "not-applicable":
            s["not_applicable"] += 1
            continue
        s["cases"] += 1
        if "status" in r:
            s["errors"] += 1
            continue
        s["spec_match"] += bool(r["spec_match"])
        s["max_steps"] = max(s["max_steps"], r["max_steps"])
        if r.get("profile_match") is not None:
            s["profile_checked"] += 1
            s["profile_match"] += bool(r["profile_match"])
        elif "profile_error" in r:
            s["not_modelled"] += 1
    n_na = sum(r.get("status") == "not-applicable" for r in results)
    compared = [r for r in results if "status" not in r]
    n_bad = len(_failures({"results": results}))
    corrupt = [f for f, why in skipped if getattr(why, "corrupt", True)]
    # bad input or nothing compared (the CLI's exit 2): damaged case files, cases the reference
    # refuses, no engine output at all, or none the profile applies to
    error = bool(corrupt or not results or len(results) == n_na
                 or any(r.get("status") == "spec-error" for r in results))
    return {"verdict": "error" if error else "fail" if n_bad else "pass",
            "n_cases": len(cases), "n_results": len(results), "n_not_applicable": n_na,
            "n_compared": len(results) - n_na,
            "n_spec_match": sum(bool(r["spec_match"]) for r in compared),
            "n_reproduced": sum(r.get("profile_match") is True for r in compared),
            "n_not_reproduced": n_bad,
            "n_not_modelled": sum(r.get("profile_match") is None for r in compared),
            "live": bool(live), "profile": profile,
            "cases_dir": str(cases_dir or default_cases_dir()), "engines": versions,
            "seconds": round(time.time() - t0, 2), "results": results,
            "summary": list(summary.values()),
            "skipped": [{"file": f, "reason": str(why), "unreadable": getattr(why, "corrupt", True)}
                        for f, why in skipped]}


def _unreadable_note(skipped):
    """"; N files could not be read: a, b" for the damaged ones among ``skipped`` ('' if none)."""
    bad = [f for f, why in skipped if getattr(why, "corrupt", True)]
    if not bad:
        return ""
    names = ", ".join(str(f).rsplit("/", 1)[-1] for f in bad[:5]) + (" ..." if len(bad) > 5 else "")
    return f"; {len(bad)} file{'s' if len(bad) > 1 else ''} could not be read: {names}"


def _tensorrt_ver():  # pragma: no cover - an NVIDIA GPU host with TensorRT
    from .golden import _tensorrt_version
    return _tensorrt_version()


def _fmt_steps(x):
    if x == 0:
        return "0"
    if x == float("inf"):
        return "inf"
    return f"{x:.3g}"


def format_report(rep, *, quiet=False):
    lines = [f"refquant conformance: {rep['n_cases']} golden cases, {rep['n_results']} engine "
             f"outputs, compared with profile {rep['profile']!r}"]
    if rep["engines"]:
        lines.append(("engines (run now): " if rep.get("live") else
                      "engines (versions that recorded the outputs): ")
                     + ", ".join(f"{e} {v or '?'}" for e, v in sorted(rep["engines"].items())))
    hdr = f"{'op':<22} {'engine':<18} {'cases':>5}  {'= spec':>7}  {'max steps':>9}  {'own profile':>12}"
    lines += ["", hdr, "-" * len(hdr)]
    for s in sorted(rep["summary"], key=lambda s: (s["op"], s["engine"])):
        own = (f"{s['profile_match']}/{s['profile_checked']}" if s["profile_checked"] else "n/a")
        notes = [f"{s['errors']} errors"] if s["errors"] else []
        if s.get("not_modelled"):
            notes.append(f"{s['not_modelled']} outside its profile")
        if s.get("not_applicable"):
            notes.append(f"{s['not_applicable']} not applicable to profile {rep['profile']}")
        lines.append(f"{s['op']:<22} {s['engine']:<18} {s['cases']:>5}  "
                     f"{s['spec_match']:>3}/{s['cases']:<3}  {_fmt_steps(s['max_steps']):>9}  "
                     f"{own:>12}" + (f"  ({'; '.join(notes)})" if notes else ""))
    if not quiet:
        lines += ["", f"= spec: outputs equal bit for bit to refquant's reference under profile "
                      f"{rep['profile']!r}" + (" (the ONNX specification)" if rep["profile"] == "onnx" else "")
                      + "; max steps: the largest difference, in steps of the output scale;",
                  "own profile: outputs that refquant's profile of that engine reproduces bit for bit "
                  "(n/a: no profile models the engine).  Spec deviations are expected of vendors; a "
                  "failure is an output its own profile does not reproduce."]
        dev = [r for r in rep["results"] if "status" not in r and not r["spec_match"]]
        if dev:
            lines += ["", f"spec deviations ({len(dev)}):"]
            for r in dev:
                why = ""
                ex = r.get("explanation") or {}
                if ex.get("matches"):
                    why = " -- reproduced by " + _names(ex["matches"], first=r.get("profile"))
                elif ex.get("summary"):
                    why = " -- " + str(ex["summary"])[:100]
                lines.append(f"  {r['engine']:<18} {r['case']:<44} {r['n_diff']:>5}/"
                             f"{r['n_elements']:<5} max {_fmt_steps(r['max_steps'])} steps{why}")
    na = [r for r in rep["results"] if r.get("status") == "not-applicable"]
    if na and not quiet:
        lines += ["", f"not applicable to profile {rep['profile']!r} ({len(na)}; not compared, not a "
                      f"mis-model):"]
        for r in na:
            lines.append(f"  {r['engine']:<18} {r['case']:<44} {r['error']}")
    nm = [r for r in rep["results"] if "profile_error" in r]
    if nm and not quiet:
        lines += ["", f"outside the engine's own profile ({len(nm)}; compared with the spec only):"]
        for r in nm:
            lines.append(f"  {r['engine']:<18} {r['case']:<44} {r['profile_error']}")
    refused = [r for r in rep["results"] if r.get("status") == "spec-error"]
    if refused:
        lines += ["", f"BAD CASES: the reference refuses them ({len(refused)}; not compared):"]
        for r in refused:
            lines.append(f"  {r['engine']:<18} {r['case']:<44} {r['error']}")
    bad = [r for r in _failures(rep) if r.get("status") != "spec-error"]
    if bad:
        lines += ["", f"NOT REPRODUCED by refquant's own profile ({len(bad)}):"]
        for r in bad:
            lines.append(f"  {r['engine']:<18} {r['case']:<44} "
                         + (r.get("error") or f"{r.get('profile_n_diff')} elements differ, max "
                            f"{_fmt_steps(r.get('profile_max_steps', 0))} steps"))
    if "verdict" in rep and rep["n_results"]:
        n_cmp = rep["n_compared"]
        n_dev = n_cmp - rep["n_spec_match"]
        n_bad = len(bad)
        lines += ["", (f"verdict: ERROR: bad input (see the messages below); "
                       + (f"{n_bad} of {n_cmp} engine outputs not reproduced" if n_bad else
                          f"the {n_cmp} outputs compared are reproduced")) if rep["verdict"] == "error" else
                  (f"verdict: FAIL: {n_bad} of {n_cmp} engine outputs not "
                   f"reproduced by refquant (listed above)") if n_bad else
                  (f"verdict: FAIL (--strict): {n_dev} of {n_cmp} engine outputs deviate from the "
                   f"spec") if rep["verdict"] == "fail" else
                  (f"verdict: PASS: no refquant profile models these outputs; {rep['n_spec_match']} of "
                   f"{n_cmp} equal the spec" if not rep["n_reproduced"] else
                   f"verdict: PASS: refquant reproduces all {rep['n_reproduced']} engine outputs it "
                   f"models bit for bit" + (f" ({rep['n_not_modelled']} compared with the spec only)"
                                            if rep["n_not_modelled"] else "")
                   + f"; {rep['n_spec_match']} of {n_cmp} equal the spec"
                   + (f" ({n_cmp - rep['n_spec_match']} vendor deviations"
                      + (", listed above)" if not quiet else ")") if n_cmp - rep["n_spec_match"] else ""))]
    return "\n".join(lines)


def _names(names, first=None, limit=5):
    """The profile names, the engine's own first, at most ``limit`` then "(+n more)"."""
    names = list(names)
    if first in names:
        names.remove(first)
        names.insert(0, first)
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" (+{more} more)" if more > 0 else "")


def _failures(rep):
    """Results that fail the model check: not reproduced, engine errors, reference errors
    (a case --profile does not apply to is not one)."""
    return [r for r in rep["results"] if r.get("profile_match") is False
            or ("status" in r and r["status"] != "not-applicable")]


def _html(rep):
    rows = "".join(
        f"<tr><td>{html.escape(s['op'])}</td><td>{html.escape(s['engine'])}</td>"
        f"<td>{s['cases']}</td><td>{s['spec_match']}</td><td>{_fmt_steps(s['max_steps'])}</td>"
        f"<td>{s['profile_match']}/{s['profile_checked']}</td></tr>"
        for s in sorted(rep["summary"], key=lambda s: (s["op"], s["engine"])))
    det = "".join(
        f"<tr class='{'ok' if r.get('spec_match') else 'dev'}'><td>{html.escape(r['case'])}</td>"
        f"<td>{html.escape(r['engine'])}</td><td>{r.get('n_diff', '')}</td>"
        f"<td>{_fmt_steps(r.get('max_steps', 0))}</td>"
        f"<td>{html.escape(str(r.get('profile_match')))}</td>"
        f"<td>{html.escape(json.dumps(r.get('explanation')) if r.get('explanation') else '')}</td></tr>"
        for r in rep["results"])
    return (f"<!doctype html><meta charset='utf-8'><title>refquant conformance</title>"
            f"<style>body{{font-family:sans-serif}}td,th{{padding:2px 8px}}tr.dev{{background:#fee}}"
            f"</style><h1>refquant conformance</h1><p>{rep['n_cases']} cases, profile "
            f"{html.escape(rep['profile'])}; engines: "
            f"{html.escape(', '.join(f'{k} {v}' for k, v in rep['engines'].items()))}</p>"
            f"<table border=1><tr><th>op</th><th>engine</th><th>cases</th><th>= spec</th>"
            f"<th>max steps</th><th>own profile</th></tr>{rows}</table><h2>cases</h2>"
            f"<table border=1><tr><th>case</th><th>engine</th><th>n diff</th><th>max steps</th>"
            f"<th>own profile</th><th>explanation</th></tr>{det}</table>")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "conformance", help="compare engine outputs on the golden cases with the reference",
        description=(__doc__.split("\n\n", 1)[1].replace("**", "").replace("``", "'")
                     if __doc__ else None),
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--engine", action="append", default=None,
                   help="only this engine's outputs (repeatable); with --live, run it now.  An "
                        "unknown name, or an engine with no outputs to compare, exits 2")
    p.add_argument("--op", default=None, help="only cases of this ONNX op (e.g. QLinearConv; any letter case)")
    p.add_argument("--profile", default="onnx", help="reference profile (default: onnx = the spec)")
    p.add_argument("--cases", default=None, help="case directory (default: the bundled golden/)")
    p.add_argument("--live", action="store_true",
                   help="run the --engine engines now instead of reading recorded outputs")
    p.add_argument("--json", default=None, metavar="FILE",
                   help="write the report as JSON ('-': stdout; the text report then goes to stderr)")
    p.add_argument("--html", default=None, metavar="FILE", help="write the report as HTML")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 on any spec deviation too (for an engine that must conform)")
    p.add_argument("--no-explain", action="store_true", help="skip explaining deviations")
    p.add_argument("--quiet", action="store_true", help="print the summary table only")
    p.set_defaults(_run=run)
    return p


def run(args):
    if args.live and not args.engine:
        print("refquant conformance: --live needs --engine", file=sys.stderr)
        return 2

    def progress(i, n, c):
        if not args.quiet and sys.stderr.isatty():
            print(f"\r[{i + 1}/{n}] {c.name:<50}", end="", file=sys.stderr, flush=True)

    try:
        from ._cliutil import check_writable
        check_writable(args.json, "--json")
        check_writable(args.html, "--html")
        from .golden import expand_engines
        engines = expand_engines(args.engine) if args.engine else None
        rep = run_conformance(args.cases, engines=engines, op=args.op, profile=args.profile,
                              live=args.live, explain=not args.no_explain, progress=progress)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        if not args.quiet and sys.stderr.isatty():
            print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
        print(f"refquant conformance: {exc}", file=sys.stderr)
        return 2
    if not args.quiet and sys.stderr.isatty():
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
    unreadable = [sk for sk in rep.get("skipped", []) if sk.get("unreadable")]
    for sk in rep.get("skipped", []):
        print(f"refquant conformance: {'error' if sk.get('unreadable') else 'warning'}: {sk['reason']}; "
              f"skipped", file=sys.stderr)
    if args.strict:
        rep["strict"] = True
        if rep["verdict"] == "pass" and rep.get("n_spec_match", 0) < rep.get("n_compared", 0):
            rep["verdict"] = "fail"
    if rep["n_results"]:     # (nothing compared: the one-line error below, no empty table)
        print(format_report(rep, quiet=args.quiet), file=sys.stderr if args.json == "-" else sys.stdout)
    try:
        if args.json == "-":
            _json.dump(rep, sys.stdout, indent=1, default=float)
            print()
        elif args.json:
            with open(args.json, "w") as f:
                _json.dump(rep, f, indent=1, default=float)
        if args.html:
            with open(args.html, "w") as f:
                f.write(_html(rep))
    except OSError as exc:
        print(f"refquant conformance: cannot write the report: {exc}", file=sys.stderr)
        return 2
    if rep["n_results"] and not rep["n_compared"]:
        print(f"refquant conformance: nothing compared: profile {args.profile!r} applies to none of "
              f"the {rep['n_results']} engine outputs (see 'not applicable' above)", file=sys.stderr)
        return 2
    if rep["n_results"] == 0:
        which = ", ".join(engines) if engines else "any engine"
        how = ("none of the cases runs on it" if args.live else
               f"record them with: refquant golden record --engine {engines[0] if engines else 'E'}"
               + (f" --cases {args.cases}" if args.cases else ""))
        print(f"refquant conformance: nothing compared: no {'live' if args.live else 'recorded'} "
              f"outputs of {which}" + (f" for {args.op}" if args.op else "")
              + f" in {rep['cases_dir']} ({how})", file=sys.stderr)
        return 2
    if unreadable:
        print(f"refquant conformance: {len(unreadable)} case file{'s' if len(unreadable) > 1 else ''} "
              f"could not be read (listed above): the report is incomplete", file=sys.stderr)
        return 2
    refused = [r for r in rep["results"] if r.get("status") == "spec-error"]
    if refused:
        print(f"refquant conformance: the reference refuses {len(refused)} case"
              f"{'s' if len(refused) > 1 else ''} (listed above): bad case files", file=sys.stderr)
        return 2
    bad = _failures(rep)
    if bad:
        return 1
    if args.strict and any(not r.get("spec_match", True) for r in rep["results"]):
        return 1
    return 0
