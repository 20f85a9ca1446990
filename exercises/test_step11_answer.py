"""Step 11: your T5 answers. First on a tiny random model (compared with minit5), then the reward: the model
that `python train.py` trained, loaded by your loader and run by your greedy decoder, says where Ganymede is."""

from pathlib import Path

import pytest
import torch

from minit5.tokenizer import Tokenizer

from ._support import make_eos_likely, reference_model, save_byte_tokenizer, tiny_config

STEP = "step11_answer"


def test_answer_matches_minit5_on_a_tiny_model(impl, tmp_path):
    config = tiny_config(vocab_size=384)  # the byte-level vocabulary the demo model uses
    ref = make_eos_likely(reference_model(config, seed=7), margin=0.5)
    ref.save_pretrained(tmp_path)
    save_byte_tokenizer(tmp_path)
    tok = Tokenizer.from_pretrained(tmp_path)
    question = "Where is Ganymede?"
    out = ref.generate(torch.tensor([tok.encode(question)]), max_new_tokens=12, step="readable")
    expected = tok.decode(out[0].tolist())
    got = impl.answer(tmp_path, question, max_new_tokens=12)
    assert isinstance(got, str), f"answer() should return the decoded text, got {type(got).__name__}"
    assert got == expected, (f"answer() on a random model gave {got!r}; minit5 gives {expected!r}. Encode with "
                             f"Tokenizer.from_pretrained(model_dir).encode (it appends EOS), generate greedily, decode.")


def test_your_t5_answers_jupiter(impl, demo_model):
    folder = Path(demo_model)
    if not (folder / "config.json").exists():
        pytest.skip(f"no trained model at {folder}: run `python train.py` (about 6 minutes on 2 CPU cores) or pass "
                    f"--demo-model DIR. This skip does not hide a missing package; this one test needs a trained model.")
    got = impl.answer(folder, "Where is Ganymede?")
    assert "Jupiter" in got, (
        f"Your T5 answered {got!r} to 'Where is Ganymede?'; minit5 answers 'Jupiter' with this model "
        f"(python generate.py --model {folder} \"Where is Ganymede?\"). Steps 1-10 pass, so compare the pieces on "
        f"this model: load it with minit5 too and compare the logits layer by layer.")
    print(f"\nYour own T5, loaded by your loader and decoded by your greedy search: Where is Ganymede? → {got}")
