#!/usr/bin/env python3
"""One Markdown table of several audits side by side: the methods as columns, every headline
measure of their summary.csv as rows, and each audit's wall time from audit.json.

    python3 tools/results/method_table.py base=runs/base sentence-debias=runs/sd/audit ...

Each argument is LABEL=AUDIT_DIR. A measure an audit did not run shows as "—"; a column whose
measure was not run but taken from another audit (Self-Debias leaves the representations alone,
so its NC metrics and unscored measures are the base model's) is marked by the audit itself
(`skipped` in audit.json), not here. Standard library only.
"""
import csv
import json
import sys
from pathlib import Path

# The rows, in reading order: (part, metric, label, digits). 50-is-unbiased scores get their
# distance from 50 beside them from the audit's own *_from_50 rows.
ROWS = [
    ("nc", "cdnv", "NC1 CDNV (→ 0)", 4),
    ("nc", "equinorm_cov", "NC2 equinorm CoV (→ 0)", 4),
    ("nc", "duality_mean", "NC3 mean alignment (→ 1)", 4),
    ("nc", "duality_std", "UNC3 std of alignments (→ 0)", 4),
    ("nc", "ncc_agreement", "NC4 NCC agreement (→ 1)", 4),
    ("seat", "avg_abs_effect_gender", "SEAT gender mean abs. effect size (→ 0)", 3),
    ("seat", "avg_abs_effect_race", "SEAT race mean abs. effect size (→ 0)", 3),
    ("seat", "avg_abs_effect_religion", "SEAT religion mean abs. effect size (→ 0)", 3),
    ("crows", "overall", "CrowS-Pairs overall (50)", 2),
    ("crows", "gender", "CrowS-Pairs gender (50)", 2),
    ("crows", "race-color", "CrowS-Pairs race (50)", 2),
    ("crows", "religion", "CrowS-Pairs religion (50)", 2),
    ("stereoset", "ss", "StereoSet intra SS (50)", 2),
    ("stereoset", "ss_gender", "StereoSet intra SS gender (50)", 2),
    ("stereoset", "lms", "StereoSet intra LMS (→ 100)", 2),
    ("stereoset", "icat", "StereoSet intra ICAT (→ 100)", 2),
    ("becpro", "overall_mean_male", "BEC-Pro mean association, male", 4),
    ("becpro", "overall_mean_female", "BEC-Pro mean association, female", 4),
    ("becpro", "overall_wilcoxon_p", "BEC-Pro Wilcoxon p (male vs female)", None),
    ("aul", "crows_overall_aul", "AUL CrowS (50)", 2),
    ("aul", "crows_overall_aula", "AULA CrowS (50)", 2),
    ("aul", "stereoset_overall_aul", "AUL StereoSet (50)", 2),
    ("aul", "stereoset_overall_aula", "AULA StereoSet (50)", 2),
    ("mlm-bias", "crows_overall_crr", "CRR CrowS (50)", 2),
    ("mlm-bias", "crows_overall_crra", "CRRA CrowS (50)", 2),
    ("mlm-bias", "crows_overall_dp", "ΔP CrowS (50)", 2),
    ("mlm-bias", "crows_overall_dpa", "ΔPA CrowS (50)", 2),
    ("mlm-bias", "stereoset_overall_crr", "CRR StereoSet (50)", 2),
    ("mlm-bias", "stereoset_overall_crra", "CRRA StereoSet (50)", 2),
    ("mlm-bias", "stereoset_overall_dp", "ΔP StereoSet (50)", 2),
    ("mlm-bias", "stereoset_overall_dpa", "ΔPA StereoSet (50)", 2),
]


def read_audit(path):
    d = Path(path)
    if not (d / "summary.csv").is_file() or not (d / "audit.json").is_file():
        sys.exit(f"method_table: {d}: no summary.csv / audit.json (not an audit directory)")
    with open(d / "summary.csv", newline="") as f:
        values = {(r["part"], r["metric"]): float(r["value"]) for r in csv.DictReader(f)}
    seconds = json.loads((d / "audit.json").read_text()).get("seconds", {})
    return values, seconds


def cell(values, part, metric, digits):
    v = values.get((part, metric))
    if v is None:
        return "—"
    if digits is None:
        return f"{v:.2g}"
    text = f"{v:.{digits}f}"
    dist = values.get((part, f"{metric}_from_50"))
    return f"{text} ({dist:.2f})" if dist is not None else text


def main(argv):
    if not argv or any("=" not in a for a in argv):
        sys.exit(__doc__)
    columns = [(a.split("=", 1)[0], read_audit(a.split("=", 1)[1])) for a in argv]
    out = ["| measure | " + " | ".join(c for c, _ in columns) + " |",
           "| --- |" + " ---: |" * len(columns)]
    for part, metric, label, digits in ROWS:
        cells = [cell(v, part, metric, digits) for _, (v, _) in columns]
        if all(c == "—" for c in cells):
            continue
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    for key in ("collapse", "eval", "total"):
        cells = [f"{s[key]:.0f} s" if key in s else "—" for _, (_, s) in columns]
        out.append(f"| audit wall time, {key} | " + " | ".join(cells) + " |")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
