#!/usr/bin/env python3
"""PyTorch reference for benches/collapse.rs: the Fairness-NC release's accumulation path
(class means and variances over the whole vocabulary by dense one-hot matrices times
features, two forward passes) on the same BUG texts, MiniLM, batch 64, max length 128.
Usage: collapse_torch.py MINILM_DIR BUG_CSV [N_TEXTS]   (prints tokens/s of passes 1+2)."""
import csv, sys, time
import torch
from transformers import BertModel, BertTokenizerFast

csv.field_size_limit(10**9)
minilm, bug = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
with open(bug, newline="") as f:
    rows = [r["sentence_text"] for r in csv.DictReader(f) if r.get("sentence_text", "").strip()]
texts = [rows[j * len(rows) // n] for j in range(n)] if n < len(rows) else rows
# Same split as fairnc: every fifth text is held out.
stats = [t for i, t in enumerate(texts) if not ((i + 1) * 0.2 // 1 > i * 0.2 // 1)]
tok = BertTokenizerFast.from_pretrained(minilm)
model = BertModel.from_pretrained(minilm).eval()
V, D = model.config.vocab_size, model.config.hidden_size
batches = [tok(stats[i:i + 64], padding="longest", truncation=True, max_length=128, return_tensors="pt")
           for i in range(0, len(stats), 64)]
tokens = sum(int(b["attention_mask"].sum()) for b in batches)
torch.set_num_threads(2)


def features(b):
    h = model(**b).last_hidden_state
    keep = b["attention_mask"].bool()
    return h[keep].double(), b["input_ids"][keep]


with torch.inference_mode():
    start = time.perf_counter()
    sums = torch.zeros(V, D, dtype=torch.float64)
    counts = torch.zeros(V, dtype=torch.float64)
    for b in batches:  # pass 1: means
        h, y = features(b)
        onehot = torch.nn.functional.one_hot(y, V).double()
        sums += onehot.T @ h
        counts += onehot.sum(0)
    means = sums / counts.clamp(min=1).unsqueeze(1)
    var = torch.zeros(V, dtype=torch.float64)
    for b in batches:  # pass 2: variances
        h, y = features(b)
        onehot = torch.nn.functional.one_hot(y, V).double()
        var += onehot.T @ ((h - means[y]) ** 2).sum(1)
    elapsed = time.perf_counter() - start
print(f"torch {torch.__version__}: {len(stats)} texts, {tokens} tokens")
print(f"release path (one-hot, 2 passes) {tokens / elapsed:8.0f} tok/s")
