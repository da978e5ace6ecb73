#!/usr/bin/env python3
"""SNR at BER 1e-2 and 1e-3 from `kaq ber --json` files, and the complexity front.

Usage: gram-crossings.py --cost NAME=MULTS ... [--front out.svg] ber.json [ber.json ...]

The crossing is the log-linear interpolation of BER between the two bracketing SNR points
(the first point at or below the target and the one before it); a detector that never gets
there prints "> last SNR". Costs are multiplies per vector (per-block stage amortized),
as printed by `kaq train` or stated in docs/f32-nets.md.
"""
import argparse
import json
import math
import re

# The colour of each detector kind, as in every kaq plot (src/plot/style.rs).
COLOURS = {"mmse": "#D55E00", "zf": "#CC79A7", "kbest": "#009E73", "ml": "#000000",
           "design": "#0072B2", "net": "#7B3F9E", "other": "#666666"}


def kind(name):
    """The detector kind of `name`, as `kaq_plot::style::kind_of` reads it."""
    n = name.strip().lower()
    if n in ("mmse", "zf", "ml"):
        return n
    if n in ("fp32", "f32"):
        return "net"
    if n.startswith("kbest"):
        return "kbest"
    if n.endswith("-int") or "@" in n or re.search(r"-\d+(b|bit)$", n):
        return "design"
    if any(re.fullmatch(r"k\d+", part) for part in n.split("-")):
        return "net"
    return "other"


def crossing(points, target):
    pts = sorted((p["snr_db"], p["ber"]) for p in points)
    for (s0, b0), (s1, b1) in zip(pts, pts[1:]):
        if b0 > target >= b1 and b1 > 0:
            f = (math.log10(b0) - math.log10(target)) / (math.log10(b0) - math.log10(b1))
            return s0 + f * (s1 - s0)
    if pts and pts[0][1] <= target:
        return None
    return float("inf")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cost", action="append", default=[])
    ap.add_argument("--front")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    costs = dict(c.split("=") for c in args.cost)
    by_det = {}
    last = {}
    for f in args.files:
        doc = json.load(open(f))
        for p in doc["points"]:
            by_det.setdefault(p["detector"], []).append(p)
            last[p["detector"]] = max(last.get(p["detector"], -1e9), p["snr_db"])
    rows = []
    print("| detector | SNR @ 1e-2 | SNR @ 1e-3 | mults/vector |")
    print("|---|---|---|---|")
    for det, pts in by_det.items():
        c2, c3 = crossing(pts, 1e-2), crossing(pts, 1e-3)
        fmt = lambda c: "—" if c is None else (f"> {last[det]:.0f} dB" if c == float("inf") else f"{c:.2f} dB")
        print(f"| {det} | {fmt(c2)} | {fmt(c3)} | {costs.get(det, '—')} |")
        if det in costs and c2 not in (None, float("inf")):
            rows.append((det, float(costs[det]), c2))
    if args.front and rows:
        w, h, pad = 640, 420, 60
        xs = [math.log10(r[1]) for r in rows]
        ys = [r[2] for r in rows]
        # Log-axis ticks at 1, 2 and 5 times a power of ten, the axis spanning the ticks
        # around the data.
        ticks = [math.log10(m * 10**k) for k in range(0, 10) for m in (1, 2, 5)]
        x0 = max(t for t in ticks if t <= min(xs) + 1e-9)
        x1 = min(t for t in ticks if t >= max(xs) - 1e-9)
        y0, y1 = math.floor(min(ys)) - 1, math.ceil(max(ys)) + 1
        X = lambda v: pad + (v - x0) / (x1 - x0) * (w - 2 * pad)
        Y = lambda v: h - pad - (v - y0) / (y1 - y0) * (h - 2 * pad)
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
               f'<rect width="{w}" height="{h}" fill="white"/>',
               f'<text x="{w/2}" y="20" text-anchor="middle" font-size="14">SNR at BER 1e-2 vs multiplies per vector (16×16 16-QAM, T = 14)</text>',
               f'<line x1="{pad}" y1="{h-pad}" x2="{w-pad}" y2="{h-pad}" stroke="black"/>',
               f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h-pad}" stroke="black"/>',
               f'<text x="{w/2}" y="{h-15}" text-anchor="middle">multiplies per vector (log)</text>',
               f'<text x="15" y="{h/2}" transform="rotate(-90 15 {h/2})" text-anchor="middle">SNR at BER 1e-2 (dB)</text>']
        for e in (t for t in ticks if x0 - 1e-9 <= t <= x1 + 1e-9):
            out.append(f'<line x1="{X(e)}" y1="{h-pad}" x2="{X(e)}" y2="{h-pad+5}" stroke="black"/>')
            out.append(f'<text x="{X(e)}" y="{h-pad+18}" text-anchor="middle">{10**e:,.0f}</text>')
        for yv in range(int(y0), int(y1) + 1, 2):
            out.append(f'<text x="{pad-8}" y="{Y(yv)+4}" text-anchor="end">{yv}</text>')
            out.append(f'<line x1="{pad}" y1="{Y(yv)}" x2="{w-pad}" y2="{Y(yv)}" stroke="#ddd"/>')
        for (det, c, s) in rows:
            out.append(f'<circle cx="{X(math.log10(c))}" cy="{Y(s)}" r="5" fill="{COLOURS[kind(det)]}"/>')
            out.append(f'<text x="{X(math.log10(c))+8}" y="{Y(s)-8}">{det}</text>')
        out.append("</svg>")
        open(args.front, "w", encoding="utf-8").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
