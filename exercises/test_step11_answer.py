"""Step 11: your T5 answers. First on a tiny random model (compared with minit5), then the reward: a trained demo
model (the small one shipped in exercises/demo_model, or the one `python train.py` writes, with --demo-model),
loaded by your loader and run by your greedy decoder, says where Ganymede is, in English and in Chinese.

(PYTEST_DONT_REWRITE: a failed check shows its own message, not pytest's account of the expression.)"""

from pathlib import Path

import torch

from minit5.tokenizer import Tokenizer

from ._support import QUESTIONS, make_eos_likely, reference_model, save_byte_tokenizer, tiny_config

STEP = "step11_answer"


def test_answer_matches_minit5_on_a_tiny_model(impl, tmp_path):
    config = tiny_config(vocab_size=384)  # the byte-level vocabulary the demo model uses
    ref = make_eos_likely(reference_model(config, seed=7), margin=0.5)
    ref.save_pretrained(tmp_path)
    save_byte_tokenizer(tmp_path)
    tok = Tokenizer.from_pretrained(tmp_path)
    question = "Where is Ganymede?"
    for max_new_tokens in (12, 3):
        out = ref.generate(torch.tensor([tok.encode(question)]), max_new_tokens=max_new_tokens, step="readable")
        expected = tok.decode(out[0].tolist())
        got = impl.answer(tmp_path, question, max_new_tokens=max_new_tokens)
        assert isinstance(got, str), f"answer() should return the decoded text, got {type(got).__name__}"
        assert got == expected, (
            f"answer(..., max_new_tokens={max_new_tokens}) on a random model gave {got!r}; minit5 gives "
            f"{expected!r}. Encode with Tokenizer.from_pretrained(model_dir).encode (it appends EOS), generate "
            f"greedily with the max_new_tokens given, decode.")


def test_your_t5_answers_jupiter(impl, demo_model, say):
    folder = Path(demo_model)
    assert (folder / "config.json").exists(), (
        f"no trained model at {folder}: --demo-model DIR (or MINIT5_DEMO_MODEL) must name a folder that "
        f"`python train.py --out DIR` wrote; without it the tests use the small model in exercises/demo_model.")
    for question, expected in QUESTIONS.items():
        got = impl.answer(folder, question)
        assert expected in got, (
            f"Your T5 answered {got!r} to {question!r}; minit5 answers {expected!r} with this model "
            f"(python generate.py --model {folder} \"{question}\"). Steps 1-10 pass, so compare the pieces on "
            f"this model: load it with minit5 too and compare the logits layer by layer.")
        say(("\n" if expected == "Jupiter" else "") +
            f"  your own T5 (your loader, your model, your KV cache and greedy search): {question} → {got}")
