#!/usr/bin/env python3
"""SNR at BER 1e-2 of `kaq explore` records, and the Pareto front of SNR loss against energy.

Usage: explore-snr-front.py --snr 21,22,23,24 [--json front.json] [--svg front.svg]
                            results.jsonl [results.jsonl ...]

Each record's SNR at the target BER is the log-linear interpolation of its BER between the two
bracketing points of the run's SNR grid (`--snr`, the grid the run measured); a record that
does not cross the target on the grid is left out. The reference is the first file's record
with every coordinate at its widest (the widest point of every grid). The loss of a record is
its SNR at the target minus the reference's; the front is every record that no other record beats in both
loss and model 2 pJ/bit. Prints the front as a Markdown table (savings against the reference in
both models) and writes it as JSON and as an SVG plot (loss against pJ/bit, both models).
"""
import argparse
import json
import math


def crossing(snr, ber, target):
    """(SNR at `target`, index of the lower bracketing point), or (None, None)."""
    for i in range(len(snr) - 1):
        a, b = ber[i], ber[i + 1]
        if a > 0 and b > 0 and a != b and (a - target) * (b - target) <= 0:
            la, lb, lt = math.log10(a), math.log10(b), math.log10(target)
            return snr[i] + (snr[i + 1] - snr[i]) * (la - lt) / (la - lb), i
    return None, None


def coords(r):
    """The candidate's coordinates: bits, then H̃, e, G, ỹ widths."""
    return r["bits"] + r["tensor_bits"] + [r["y_bits"]]


def label(r):
    h, e, g = r["tensor_bits"]
    return f"{r['name']} bits {','.join(map(str, r['bits']))} H,e,G,y {h},{e},{g},{r['y_bits']}"


def svg(front, ref, path):
    w, h, left, right, top, bottom = 760, 420, 70, 20, 30, 50
    xs = [p["m2_pj_per_bit"] for p in front] + [p["m1_pj_per_bit"] for p in front]
    xs += [ref["m2_pj_per_bit"], ref["m1_pj_per_bit"]]
    ys = [p["loss_db"] for p in front] + [0.0]
    x0, x1 = min(xs) * 0.95, max(xs) * 1.02
    y0, y1 = min(0.0, min(ys)) - 0.02, max(ys) + 0.05

    def px(x):
        return left + (x - x0) / (x1 - x0) * (w - left - right)

    def py(y):
        return top + (y1 - y) / (y1 - y0) * (h - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="18" text-anchor="middle" font-size="13">SNR loss at BER '
           f'1e-2 against energy per bit (front of the search)</text>']
    for k in range(6):
        y = y0 + (y1 - y0) * k / 5
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
                   f'stroke="#ddd"/><text x="{left - 5}" y="{py(y) + 4:.1f}" '
                   f'text-anchor="end">{y:+.2f}</text>')
        x = x0 + (x1 - x0) * k / 5
        out.append(f'<line y1="{top}" y2="{h - bottom}" x1="{px(x):.1f}" x2="{px(x):.1f}" '
                   f'stroke="#eee"/><text x="{px(x):.1f}" y="{h - bottom + 15}" '
                   f'text-anchor="middle">{x:.0f}</text>')
    out.append(f'<line x1="{left}" x2="{w - right}" y1="{py(0.2):.1f}" y2="{py(0.2):.1f}" '
               f'stroke="#999" stroke-dasharray="4 3"/><text x="{w - right - 4}" '
               f'y="{py(0.2) - 4:.1f}" text-anchor="end">0.2 dB</text>')
    for key, colour, name in [("m2_pj_per_bit", "#0072B2", "model 2"),
                              ("m1_pj_per_bit", "#009E73", "model 1")]:
        pts = sorted(front, key=lambda p: p[key])
        d = " ".join(f"{px(p[key]):.1f},{py(p['loss_db']):.1f}" for p in pts)
        out.append(f'<polyline points="{d}" fill="none" stroke="{colour}"/>')
        for p in pts:
            out.append(f'<circle cx="{px(p[key]):.1f}" cy="{py(p["loss_db"]):.1f}" r="3" '
                       f'fill="{colour}"/>')
        out.append(f'<rect x="{px(ref[key]) - 4:.1f}" y="{py(0) - 4:.1f}" width="8" '
                   f'height="8" fill="none" stroke="{colour}" stroke-width="2"/>')
    lx = left + 10
    for i, (colour, name) in enumerate([("#0072B2", "front (model 2)"),
                                        ("#009E73", "the same designs, model 1"),
                                        ("#666", "square: uniform 8-bit reference")]):
        out.append(f'<circle cx="{lx}" cy="{top + 12 + 15 * i}" r="3" fill="{colour}"/>'
                   f'<text x="{lx + 8}" y="{top + 16 + 15 * i}">{name}</text>')
    out.append(f'<text x="{w / 2}" y="{h - 10}" text-anchor="middle">energy (pJ/bit)</text>')
    out.append(f'<text x="15" y="{h / 2}" text-anchor="middle" '
               f'transform="rotate(-90 15 {h / 2})">loss at BER 1e-2 (dB)</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--snr", required=True)
    ap.add_argument("--target", type=float, default=1e-2)
    ap.add_argument("--json")
    ap.add_argument("--svg")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    snr = [float(s) for s in a.snr.split(",")]
    recs, first = [], None
    for i, path in enumerate(a.files):
        with open(path) as f:
            rs = [json.loads(line) for line in f if line.strip()]
        if i == 0:
            widest = [max(c) for c in zip(*(coords(r) for r in rs))]
            first = next(r for r in rs if coords(r) == widest)
        recs += rs
    ref_snr, _ = crossing(snr, first["ber"], a.target)
    if ref_snr is None:
        raise SystemExit("the reference does not cross the target on --snr")
    points = []
    for r in recs:
        s, i = crossing(snr, r["ber"], a.target)
        if s is None:
            continue
        points.append(dict(r, snr_at_target_db=s, loss_db=s - ref_snr,
                           bracket_bit_errors=r["bit_errors"][i:i + 2]))
    points.sort(key=lambda p: (p["m2_pj_per_bit"], p["loss_db"]))
    front, best = [], math.inf
    for p in points:
        if p["loss_db"] < best:
            front.append(p)
            best = p["loss_db"]
    ref = dict(first, snr_at_target_db=ref_snr, loss_db=0.0)
    print(f"reference: {label(first)}, {ref_snr:.3f} dB, model 2 "
          f"{first['m2_pj_per_bit']:.1f}, model 1 {first['m1_pj_per_bit']:.1f} pJ/bit")
    print("| design | SNR @ target | loss | model 2 pJ/bit | model 1 pJ/bit | bit errors |")
    print("| --- | --- | --- | --- | --- | --- |")
    for p in front:
        m2 = 100 * (1 - p["m2_pj_per_bit"] / first["m2_pj_per_bit"])
        m1 = 100 * (1 - p["m1_pj_per_bit"] / first["m1_pj_per_bit"])
        print(f"| {label(p)} | {p['snr_at_target_db']:.3f} dB | {p['loss_db']:+.3f} | "
              f"{p['m2_pj_per_bit']:.1f} (−{m2:.1f} %) | {p['m1_pj_per_bit']:.1f} (−{m1:.1f} %) "
              f"| {p['bracket_bit_errors'][0]}, {p['bracket_bit_errors'][1]} |")
    keep = ["name", "layers", "bits", "tensor_bits", "y_bits", "ber", "bit_errors",
            "bits_simulated", "m1_pj_per_bit", "m2_pj_per_bit", "snr_at_target_db", "loss_db"]
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"snr_db": snr, "target_ber": a.target,
                       "reference": {k: ref[k] for k in keep},
                       "front": [{k: p[k] for k in keep} for p in front]}, f, indent=1)
            f.write("\n")
    if a.svg:
        svg(front, ref, a.svg)


if __name__ == "__main__":
    main()
