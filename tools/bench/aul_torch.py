"""PyTorch's time for the AUL/AULA work of `fairnc eval --tasks aul`: both sentences of every pair of
CrowS-Pairs and StereoSet intrasentence (stereotype and anti-stereotype) through a masked LM once,
unmasked, with attentions.

Two ways: `single` is Kaneko & Bollegala's procedure (one sentence per forward pass), timed on
the first --sample sentences and extrapolated per token; `batched` pads length-sorted batches of
--batch-size (what a speed-minded PyTorch user would write), timed in full. Prints the token
count (special tokens included), seconds and tokens/s of each.

Usage: python tools/bench/aul_torch.py MODEL_DIR CROWS_CSV STEREOSET_JSON [--threads 2]
"""
import argparse
import csv
import json
import time

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer


def sentences(crows_csv, stereoset_json):
    """Both sentences of every pair, in order (fairnc scores each pair's two, repeats included)."""
    texts = []
    with open(crows_csv, newline="") as f:
        for row in csv.DictReader(f):
            texts += [row["sent_more"], row["sent_less"]]
    with open(stereoset_json) as f:
        for c in json.load(f)["data"]["intrasentence"]:
            by = {s["gold_label"]: s["sentence"] for s in c["sentences"]}
            texts += [by["stereotype"], by["anti-stereotype"]]
    return texts


def scores(model, ids, mask):
    out = model(input_ids=ids, attention_mask=mask)
    lp = torch.log_softmax(out.logits, dim=-1).gather(2, ids.unsqueeze(2)).squeeze(2)
    # Received attention averaged over layers, heads and real queries.
    att = torch.stack(out.attentions).mean(dim=(0, 2))  # batch, query, key
    att = (att * mask.unsqueeze(2)).sum(1) / mask.sum(1, keepdim=True)
    inner = mask.clone()
    inner[:, 0] = 0
    inner[torch.arange(len(ids)), mask.sum(1) - 1] = 0
    n = inner.sum(1)
    return (lp * inner).sum(1) / n, (lp * att * inner).sum(1) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("crows_csv")
    ap.add_argument("stereoset_json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sample", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    model = AutoModelForMaskedLM.from_pretrained(a.model_dir, attn_implementation="eager").eval()
    texts = sentences(a.crows_csv, a.stereoset_json)
    enc = [tok.encode(t, truncation=True, max_length=model.config.max_position_embeddings) for t in texts]
    tokens = sum(len(e) for e in enc)
    print(f"{len(texts)} sentences, {tokens} tokens; torch {torch.__version__}, {a.threads} threads")
    with torch.inference_mode():
        sample = enc[: a.sample]
        t0 = time.perf_counter()
        for e in sample:
            ids = torch.tensor([e])
            out = model(input_ids=ids, output_attentions=True)
            lp = torch.log_softmax(out.logits[0], dim=1).gather(1, ids.view(-1, 1))[1:-1].squeeze(1)
            att = torch.cat(out.attentions, 0).mean(0).mean(0).mean(0)
            lp.mean().item(), (lp * att[1:-1]).mean().item()
        dt = time.perf_counter() - t0
        rate = sum(len(e) for e in sample) / dt
        print(f"single: {rate:.0f} tok/s (timed on {len(sample)} sentences, {dt:.1f} s), full run extrapolated {tokens / rate:.1f} s")
        model.config.output_attentions = True
        order = sorted(range(len(enc)), key=lambda i: len(enc[i]))
        t0 = time.perf_counter()
        for s in range(0, len(order), a.batch_size):
            group = [enc[i] for i in order[s : s + a.batch_size]]
            width = max(len(e) for e in group)
            ids = torch.tensor([e + [tok.pad_token_id] * (width - len(e)) for e in group])
            mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in group])
            scores(model, ids, mask)
        dt = time.perf_counter() - t0
        print(f"batched ({a.batch_size}): {tokens / dt:.0f} tok/s, full run {dt:.1f} s")


if __name__ == "__main__":
    main()
