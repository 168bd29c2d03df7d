#!/usr/bin/env python3
"""A 1.1-billion-parameter Llama-shaped checkpoint with random weights (TinyLlama's shape:
22 layers, hidden 2048, 32 query / 4 key-value heads, SwiGLU 5632, vocabulary 32000, untied
head), saved as bf16 safetensors (2.2 GB) with the tiny llama fixture's tokenizer, for the
memory and speed benchmark in BENCHMARKS.md. Run outside the repository:

  python tools/bench/make_llama_1b.py OUT_DIR
"""
import os
import shutil
import sys

import torch
import transformers

out = sys.argv[1]
cfg = transformers.LlamaConfig(
    vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
    num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
    rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
)
torch.manual_seed(0)
with torch.no_grad():
    model = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16)
print(f"{sum(p.numel() for p in model.parameters()) / 1e9:.3f} B parameters")
model.save_pretrained(out, safe_serialization=True)
fixture = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "models", "llama")
for name in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(fixture, name), out)
