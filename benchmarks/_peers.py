"""refquant's ratio to each peer in one benchmark row set (bench_gemm, bench_conv)."""
from __future__ import annotations


def peer_ratios(res, pairs):
    """{"<refquant entry> / <peer entry>": GOPS ratio} for every (refquant, peer) pair of ``res``
    entries that were both measured (> 1: refquant faster)."""
    out = {}
    for ours, peer in pairs:
        a, b = res.get(ours, {}).get("gops"), res.get(peer, {}).get("gops")
        if a and b:
            out[f"{ours} / {peer}"] = a / b
    return out


def print_peer_ratios(ratios, width):
    """One line per refquant entry: its ratio to each peer."""
    by = {}
    for k, v in ratios.items():
        ours, peer = k.split(" / ", 1)
        by.setdefault(ours, []).append(f"{peer} {v:.2f}x")
    for ours, items in by.items():
        print(f"  {ours + ' vs':{width}s} " + ", ".join(items))
