"""Audit a model from Python and print the headline numbers (summary.csv's rows).

    python python/examples/audit_fixture.py [MODEL]

MODEL defaults to the tiny BERT fixture of the repository (random weights: the numbers say
nothing about bias, the run shows the API); give `minilm` or a checkpoint directory for a real one.
"""

import sys
from pathlib import Path

import fairnc

default = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "models" / "bert"
model = fairnc.load(sys.argv[1] if len(sys.argv) > 1 else default)
audit = fairnc.audit(model, quick=True)
print(f"{audit.model}: {model.info['family']}, {model.info['parameters']} parameters")
for row in audit.headline:
    print(f"  {row['part']:<10} {row['metric']:<28} {row['value']:.4f}")
for s in audit.skipped:
    print(f"  skipped {s['part']}: {s['reason']}")
