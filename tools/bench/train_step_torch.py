#!/usr/bin/env python3
"""PyTorch reference for benches/train_step.rs: one masked-LM training step (forward,
backward, clip_grad_norm_ 1.0, AdamW) for MiniLM (with a new MLM head) at 32x64 and a random
BERT-base-sized BertForMaskedLM at 8x128, train mode (dropout on), mean of 3 steps after one
warm-up. Usage: train_step_torch.py MINILM_DIR"""
import sys, time
import torch
from transformers import BertConfig, BertForMaskedLM

torch.manual_seed(0)
torch.set_num_threads(2)


def step_time(model, batch, length, reps=3):
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
    ids = torch.randint(1000, 21000, (batch, length))

    def once():
        labels = ids.clone()
        chosen = torch.rand(ids.shape) < 0.15
        labels[~chosen] = -100
        inputs = ids.clone()
        inputs[chosen] = 103
        out = model(input_ids=inputs, labels=labels)
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    once()
    start = time.perf_counter()
    for _ in range(reps):
        once()
    return (time.perf_counter() - start) / reps


print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
minilm = BertForMaskedLM.from_pretrained(sys.argv[1])
print(f"minilm     32x64   {step_time(minilm, 32, 64):6.3f} s/step")
base = BertForMaskedLM(BertConfig())
print(f"bert-base   8x128  {step_time(base, 8, 128):6.3f} s/step")
