"""Step 11 (solution): your T5 answers."""

import torch

from minit5.tokenizer import Tokenizer

from .step07_load_checkpoint import load_hf_checkpoint
from .step08_greedy import greedy_generate


def answer(model_dir, question: str, max_new_tokens: int = 32) -> str:
    model = load_hf_checkpoint(model_dir)
    tok = Tokenizer.from_pretrained(model_dir)
    input_ids = torch.tensor([tok.encode(question)])
    out = greedy_generate(model, input_ids, max_new_tokens=max_new_tokens)
    return tok.decode(out[0].tolist())
