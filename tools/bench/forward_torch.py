#!/usr/bin/env python3
"""PyTorch eager reference for benches/forward.rs: tokens/s of the last hidden state for
MiniLM at 32x128 and a random BERT-base-sized model at 8x128, same inputs as the Rust bench
(random ids, no padding). Usage: forward_torch.py MINILM_DIR (e.g. ~/.cache/fairnc/bundles/minilm)."""
import sys, time
import torch
from transformers import BertConfig, BertModel

torch.manual_seed(0)


def throughput(model, batch, length, reps=8):
    ids = torch.randint(1000, 21000, (batch, length))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=mask)
        start = time.perf_counter()
        for _ in range(reps):
            model(input_ids=ids, attention_mask=mask).last_hidden_state
        return batch * length * reps / (time.perf_counter() - start)


print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
minilm = BertModel.from_pretrained(sys.argv[1]).eval()
print(f"minilm     32x128  {throughput(minilm, 32, 128):8.0f} tok/s")
base = BertModel(BertConfig()).eval()
print(f"bert-base   8x128  {throughput(base, 8, 128):8.0f} tok/s")
