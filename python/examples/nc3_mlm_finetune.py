"""Masked-LM fine-tuning with the NC3 regularizer in a plain transformers + torch loop.

    python examples/nc3_mlm_finetune.py [CHECKPOINT_DIR] [--steps N] [--lam LAMBDA]

CHECKPOINT_DIR is a local BertForMaskedLM checkpoint (default: the tiny test fixture
tests/fixtures/models/bert, random weights, so the numbers only show the loop working). Each
step adds λ · NC3 — the std over the gender classes seen so far of the cosine between their
centred running mean of last-layer hidden states and their (tied) output-embedding row — to the
MLM loss, exactly the term ``fairnc debias --nc3-lambda`` optimises.
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile

import torch
from transformers import AutoTokenizer, BertForMaskedLM

from fairnc import nc3

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "models" / "bert"

SENTENCES = [
    "he said her work is good",
    "she said his job is in the city",
    "the doctor said he works",
    "the nurse said she works at the car",
    "his job and her work",
    "she is a doctor and he is a nurse",
]

# A small word set (pairs of male and female words); the built-in "gender" set needs the
# benchmark bundle, which is fetched on first use.
WORDS = """name = "pronouns"
[[group]]
name = "male"
words = ["he", "his", "him"]
[[group]]
name = "female"
words = ["she", "her", "hers"]
"""


def mask_tokens(input_ids: torch.Tensor, tokenizer, gen: torch.Generator, p: float = 0.15):
    """BERT-style masking of non-special tokens: (masked input, labels with -100 elsewhere)."""
    special = torch.tensor(
        [tokenizer.get_special_tokens_mask(row, already_has_special_tokens=True) for row in input_ids.tolist()],
        dtype=torch.bool,
    )
    chosen = (torch.rand(input_ids.shape, generator=gen) < p) & ~special
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    masked = torch.where(chosen, torch.full_like(input_ids, tokenizer.mask_token_id), input_ids)
    return masked, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", default=str(FIXTURE), help="a local BertForMaskedLM checkpoint directory")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--lam", type=float, default=100.0, help="λ, the weight of the NC3 term (the release: 100)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--words", default=None, help="a word set (built-in name or file); default: a small pronoun set")
    args = ap.parse_args()

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    model = BertForMaskedLM.from_pretrained(args.checkpoint).to(device)
    model.train()

    with tempfile.TemporaryDirectory() as tmp:
        words = args.words
        if words is None:
            words = str(pathlib.Path(tmp) / "pronouns.toml")
            pathlib.Path(words).write_text(WORDS)
        # The tokenizer's name_or_path is the checkpoint directory: fairnc reads its vocabulary.
        reg = nc3.Regularizer.from_words(words, tokenizer)
    print(f"NC3 classes: {', '.join(reg.tokens)} (target {reg.target}; left out: {len(reg.skipped)})")

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    for step in range(args.steps):
        input_ids, labels = mask_tokens(batch["input_ids"], tokenizer, gen)
        input_ids, labels = input_ids.to(device), labels.to(device)
        mask = batch["attention_mask"].to(device)
        outputs = model(input_ids=input_ids, attention_mask=mask, labels=labels, output_hidden_states=True)
        # Running class sums of the detached last-layer states, labelled by the (masked) input.
        reg.observe(outputs.hidden_states[-1], input_ids, attention_mask=mask)
        term = reg.loss(model.get_output_embeddings().weight)
        loss = outputs.loss + args.lam * term
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(
            f"step {step + 1}: loss {loss.item():.4f}  mlm {outputs.loss.item():.4f}  "
            f"nc3 {term.item():.4f}  (classes seen {reg.seen}/{len(reg.class_ids)})"
        )


if __name__ == "__main__":
    main()
