#!/usr/bin/env python3
"""Tables of docs/channels.md from the JSON files of scripts/measure-channels.sh.

Usage: channels-tables.py OUTDIR

Crossings at BER 1e-2 are the log-linear interpolation between the two bracketing SNR points
(the same rule as scripts/gram-crossings.py); the interval of a crossing interpolates the
Wilson bounds of the same two points the same way.
"""
import glob
import json
import math
import os
import sys


def load(path):
    return json.load(open(path))["points"]


def crossing(points, target=1e-2, key="ber"):
    pts = sorted((p["snr_db"], p[key]) for p in points)
    for (s0, b0), (s1, b1) in zip(pts, pts[1:]):
        if b0 > target >= b1 and b1 > 0:
            f = (math.log10(b0) - math.log10(target)) / (math.log10(b0) - math.log10(b1))
            return s0 + f * (s1 - s0)
    return None


def ci_crossing(points):
    # The upper Wilson bound crosses later, the lower one earlier.
    return crossing(points, key="ber_ci_low"), crossing(points, key="ber_ci_high")


def fmt(x):
    return "—" if x is None else f"{x:.2f}"


def by_detector(points):
    out = {}
    for p in points:
        out.setdefault(p["detector"], []).append(p)
    return out


def with_tails(d, csi, curves):
    """Replaces a point of `curves` by the one of tail-CSI-*.json at its SNR with more errors."""
    for path in sorted(glob.glob(f"{d}/tail-{csi}-*.json")):
        for det, pts in by_detector(load(path)).items():
            row = curves.setdefault(det, [])
            for p in pts:
                at = [i for i, q in enumerate(row) if q["snr_db"] == p["snr_db"]]
                if not at:
                    row.append(p)
                elif row[at[0]]["bit_errors"] < p["bit_errors"]:
                    row[at[0]] = p
    return curves


def site_table(title, files, d, labels, bers=()):
    """One row per detector of the BER files `files` (name -> path), named by `labels`: the
    1e-2 crossing and its Wilson interval on each, then the BER at the SNRs `bers` of the first
    file."""
    print(f"\n{title}\n")
    print("| detector | " + " | ".join(files) + "".join(f" | BER at {b} dB" for b in bers) + " |")
    print("|---|" + "---|" * (len(files) + len(bers)))
    rows = {}
    for name, path in files.items():
        if not os.path.exists(f"{d}/{path}"):
            continue
        for det, pts in by_detector(load(f"{d}/{path}")).items():
            rows.setdefault(det, {})[name] = pts
    for det, tests in rows.items():
        cells = []
        for name in files:
            pts = tests.get(name)
            if pts is None:
                cells.append("—")
                continue
            lo, hi = ci_crossing(pts)
            cells.append(f"{fmt(crossing(pts))} [{fmt(lo)}, {fmt(hi)}]")
        first = tests.get(next(iter(files)), [])
        for b in bers:
            p = next((p for p in first if p["snr_db"] == b), None)
            cells.append("—" if p is None else f"{p['ber']:.2e}")
        print(f"| {labels.get(det, det)} | " + " | ".join(cells) + " |")


def main():
    d = sys.argv[1]
    csis = [("perfect", "perfect"), ("lmmse-8", "LMMSE, L_p = 8"), ("lmmse-16", "LMMSE, L_p = 16"),
            ("ls-8", "LS, L_p = 8"), ("ls-16", "LS, L_p = 16")]
    curves = {c: with_tails(d, c, by_detector(load(f"{d}/ber-{c}.json"))) for c, _ in csis}
    for c, _ in csis:
        # The cg net's rows of section 6 (its mmse rows repeat those of ber-CSI.json).
        if os.path.exists(f"{d}/ber-cg-{c}.json"):
            extra = by_detector(load(f"{d}/ber-cg-{c}.json"))
            curves[c].update({k: v for k, v in extra.items() if k not in curves[c]})
    dets = list(curves["perfect"].keys())
    snrs = sorted({p["snr_db"] for p in load(f"{d}/ber-perfect.json")})
    for det in dets:
        print(f"\n{det}: BER\n")
        print("| CSI | " + " | ".join(f"{s:g} dB" for s in snrs) + " |")
        print("|---|" + "---|" * len(snrs))
        for c, name in csis:
            row = {p["snr_db"]: p for p in curves[c][det]}
            cells = []
            for s in snrs:
                p = row.get(s)
                cells.append("—" if p is None else f"{p['ber']:.2e}" + ("" if p["bit_errors"] >= 1000 else f" ({p['bit_errors']} err)"))
            print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nSNR at BER 1e-2 (dB) and the loss against perfect CSI (dB)\n")
    print("| CSI | " + " | ".join(f"{det} @1e-2 | loss" for det in dets) + " |")
    print("|---|" + "---|---|" * len(dets))
    for c, name in csis:
        cells = []
        for det in dets:
            x = crossing(curves[c][det])
            x0 = crossing(curves["perfect"][det])
            loss = None if x is None or x0 is None else x - x0
            cells += [fmt(x), fmt(loss)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nSite-specific training: SNR at BER 1e-2 (dB), [interval from the Wilson bounds]\n")
    print("| detector | on site held-out | on i.i.d. |")
    print("|---|---|---|")
    rows = {}
    nets = [("site-{net}-on-{test}.json", "oamp-k10", "trained on site, SNR 4-16 dB"),
            ("site-perfect-on-{test}.json", "oamp-k10", "trained on i.i.d., SNR 4-16 dB"),
            ("hi-site-hi-on-{test}.json", "oamp-k10", "trained on site, SNR 10-22 dB"),
            ("hi-iid-hi-on-{test}.json", "oamp-k10", "trained on i.i.d., SNR 10-22 dB")]
    for test in ["site", "iid"]:
        for pattern, det, label in nets:
            path = f"{d}/" + pattern.format(net="site", test=test)
            if os.path.exists(path):
                pts = by_detector(load(path))[det]
                rows.setdefault(f"{det} {label}", {})[test] = pts
        for det, pts in by_detector(load(f"{d}/site-ref-on-{test}.json")).items():
            rows.setdefault(det, {})[test] = pts
    for name, tests in rows.items():
        cells = []
        for test in ["site", "iid"]:
            pts = tests.get(test)
            if pts is None:
                cells.append("—")
                continue
            lo, hi = ci_crossing(pts)
            cells.append(f"{fmt(crossing(pts))} [{fmt(lo)}, {fmt(hi)}]")
        print(f"| {name} | " + " | ".join(cells) + " |")
    site_table("Site-dependent capacity (2e4 samples, 10 epochs, SNR 10-22 dB): SNR at BER 1e-2 "
               "(dB), [interval from the Wilson bounds]",
               {"on site held-out": "long-on-site.json", "on i.i.d.": "long-on-iid.json"}, d,
               {"cg-k8-l8": "cg-k8-l8 trained on site",
                "cg-k8-l8 (cg-iid.model.json)": "cg-k8-l8 trained on i.i.d.",
                "oamp-k10": "oamp-k10 trained on site",
                "oamp-k10 (oampl-iid.model.json)": "oamp-k10 trained on i.i.d."})
    site_table("The same two nets from --seed 2: SNR at BER 1e-2 (dB), [interval]",
               {"on site held-out": "s2-on-site.json"}, d,
               {"cg-k8-l8": "cg-k8-l8 trained on site", "oamp-k10": "oamp-k10 trained on i.i.d."})
    site_table("The site-trained cg-k8-l8 quantized (PTQ, integer golden model) on the site's "
               "held-out channels: SNR at BER 1e-2 (dB), [interval]",
               {"on site held-out": "quant-on-site.json"}, d,
               {"cg-k8-l8": "cg-k8-l8 f32",
                "cg-k8-l8-ptq-8b-int": "8 bits, calibrated on the site",
                "cg-k8-l8-ptq-10b-int": "10 bits, calibrated on the site",
                "cg-k8-l8-ptq-8b-int (cg-site-iidcal-ptq8.ir.json)": "8 bits, calibrated on i.i.d.",
                "cg-k8-l8-ptq-10b-int (cg-site-iidcal-ptq10.ir.json)":
                    "10 bits, calibrated on i.i.d."},
               bers=(16.0, 18.0, 22.0))
    site_table("The same net calibrated on the site with percentile rules: SNR at BER 1e-2 (dB)",
               {"on site held-out": "quant-pct-on-site.json"}, d,
               {"cg-k8-l8": "cg-k8-l8 f32",
                "cg-k8-l8-ptq-8b-int": "8 bits, p99.9",
                "cg-k8-l8-ptq-10b-int": "10 bits, p99.9",
                "cg-k8-l8-ptq-8b-int (cg-site-p99-ptq8.ir.json)": "8 bits, p99",
                "cg-k8-l8-ptq-10b-int (cg-site-p99-ptq10.ir.json)": "10 bits, p99"},
               bers=(16.0, 18.0, 22.0))


main()
