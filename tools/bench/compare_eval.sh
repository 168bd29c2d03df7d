#!/usr/bin/env bash
# Wall time of the full CrowS-Pairs + StereoSet intrasentence + SEAT-gender run on MiniLM with
# the fixture's fixed MLM head: fairnc (batched) against the reference procedure
# (tools/fixtures/eval_reference.py: PyTorch, batch size 1, one forward per masked variant),
# which is timed on a subset and extrapolated per item.
# Usage: tools/bench/compare_eval.sh PYTHON [CROWS_ROWS] [STEREOSET_CLUSTERS]
set -euo pipefail
py=${1:?python with torch and transformers}
crows_n=${2:-150}
stereo_n=${3:-300}
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
cargo build -q --release
minilm=$(target/release/fairnc fetch minilm | awk '{print $3}')
"$py" - "$minilm" tests/fixtures/eval/minilm-head.safetensors "$work/model" <<'PY'
import shutil, sys, os
from safetensors.torch import load_file, save_file
src, head, out = sys.argv[1:4]
os.makedirs(out, exist_ok=True)
t = load_file(os.path.join(src, "model.safetensors")); t.update(load_file(head))
save_file(t, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"]:
    shutil.copy(os.path.join(src, f), out)
PY
now() { date +%s.%N; }
t0=$(now)
FAIRNC_NO_PROGRESS=1 target/release/fairnc eval --model "$work/model" --tasks crows,stereoset,seat --output "$work/fairnc" > /dev/null
t1=$(now)
echo "fairnc full run (1,508 pairs, 6,392 clusters, 6 SEAT tests): $(echo "$t1 - $t0" | bc) s"
R="$py tools/fixtures/eval_reference.py"
t0=$(now); $R crows --minilm-head tests/fixtures/eval/minilm-head.safetensors --name minilm --variant bias-bench --max-index "$crows_n" --out "$work/c.json" > /dev/null 2>&1; t1=$(now)
crows=$(echo "($t1 - $t0) * 1508 / $crows_n" | bc -l)
t0=$(now); $R stereoset --minilm-head tests/fixtures/eval/minilm-head.safetensors --name minilm --kind mlm --max-clusters "$stereo_n" --out "$work/s.json" > /dev/null 2>&1; t1=$(now)
stereo=$(echo "($t1 - $t0) * 6392 / $stereo_n" | bc -l)
t0=$(now); $R seat --model-dir "$minilm" --name minilm --tests sent-weat6,sent-weat6b,sent-weat7,sent-weat7b,sent-weat8,sent-weat8b --out "$work/t.json" > /dev/null 2>&1; t1=$(now)
seat=$(echo "$t1 - $t0" | bc -l)
printf 'reference, extrapolated: CrowS %.0f s (timed on %s rows), StereoSet %.0f s (timed on %s clusters), SEAT %.0f s, total %.0f s\n' "$crows" "$crows_n" "$stereo" "$stereo_n" "$seat" "$(echo "$crows + $stereo + $seat" | bc -l)"
rm -rf "$work"
