#!/usr/bin/env python3
"""PyTorch eager beside `fairnc hidden` on a checkpoint: load (weights upcast to float32, as
fairnc computes by default), tokenize each line of TEXTS, run the base model over batches of
similar length (right padding), and print load seconds, forward tokens/s and peak RSS.

  python tools/bench/hidden_torch.py MODEL_DIR TEXTS [--batch-size 16] [--threads 2]
"""
import argparse
import resource
import time

import torch
import transformers

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("texts")
ap.add_argument("--batch-size", type=int, default=16)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)
t0 = time.perf_counter()
model = transformers.AutoModel.from_pretrained(args.model, dtype=torch.float32, attn_implementation="sdpa").eval()
tok = transformers.AutoTokenizer.from_pretrained(args.model)
load = time.perf_counter() - t0
lines = [l.strip() for l in open(args.texts, encoding="utf-8") if l.strip()]
rows = sorted((tok(l)["input_ids"] for l in lines), key=len, reverse=True)
pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
tokens = sum(len(r) for r in rows)
t1 = time.perf_counter()
with torch.inference_mode():
    for i in range(0, len(rows), args.batch_size):
        chunk = rows[i : i + args.batch_size]
        T = len(chunk[0])
        ids = torch.tensor([r + [pad] * (T - len(r)) for r in chunk])
        mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in chunk])
        model(input_ids=ids, attention_mask=mask).last_hidden_state
fwd = time.perf_counter() - t1
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
print(f"torch {torch.__version__} threads {torch.get_num_threads()}: load {load:.1f} s, {len(rows)} texts "
      f"{tokens} tokens in {fwd:.1f} s = {tokens / fwd:.1f} tok/s, peak RSS {rss:.2f} GiB")
