#!/usr/bin/env python3
"""Summarise results/runs.jsonl: per label/MTU/P, medians and min-max of underlay, overlay and the
pairs' ratios, over clean pairs (and, in brackets, the ratio median over all pairs)."""
import json, sys, statistics as st
from collections import OrderedDict
path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/fastpath/results/runs.jsonl"
groups = OrderedDict()
for line in open(path):
    r = json.loads(line)
    groups.setdefault((r["label"], r["mtu"], r["p"]), []).append(r)
print("%-22s %5s %2s %-9s %-22s %-22s %-22s %s" % ("label", "mtu", "P", "clean/all", "underlay Gb/s med (min-max)", "overlay Gb/s", "ratio", "ratio all pairs"))
for (label, mtu, p), rs in groups.items():
    cl = [r for r in rs if r["clean"]] or []
    def f(k, rows, fmt="%.2f"):
        v = [r[k] for r in rows]
        if not v: return "-"
        return (fmt + " (" + fmt + "-" + fmt + ")") % (st.median(v), min(v), max(v))
    print("%-22s %5d %2d %-9s %-22s %-22s %-22s %s" % (label, mtu, p, "%d/%d" % (len(cl), len(rs)),
          f("under", cl), f("over", cl), f("ratio", cl, "%.3f"), f("ratio", rs, "%.3f")))
