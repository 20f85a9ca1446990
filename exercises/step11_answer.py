"""Step 11 of 11: your T5 answers.                                           about 10 minutes

Test: python -m pytest exercises -k step11    (the last test needs the model `python train.py` writes to
out/demo; pass another folder with --demo-model DIR)

Put it together: your loader (step 7), your model (steps 1-6), your greedy decoder (step 8). Text becomes token
ids with minit5's tokenizer (tokenizers are not part of these exercises; the demo model reads bytes: id = byte + 3).
"""

import torch  # noqa: F401

from minit5.tokenizer import Tokenizer  # noqa: F401

from .step07_load_checkpoint import load_hf_checkpoint  # noqa: F401
from .step08_greedy import greedy_generate  # noqa: F401


def answer(model_dir, question: str, max_new_tokens: int = 32) -> str:
    """Load the model in model_dir with load_hf_checkpoint and its tokenizer with Tokenizer.from_pretrained;
    encode the question (tok.encode appends EOS) as a (1, S) tensor; greedy_generate; return tok.decode of the row."""
    raise NotImplementedError("step 11: answer")
