"""The sampler against transformers' generate: identical tokens for greedy and beam search on every variant,
the same sampling filters, cached decoding equal to recomputing the decoder, and clear errors."""

import pytest
import torch
from hf_models import load_hf, padded_batch
from transformers.generation.logits_process import (TemperatureLogitsWarper, TopKLogitsWarper,
                                                    TopPLogitsWarper)

from minit5 import T5
from minit5.generate import sample_filters, top_k_filter, top_p_filter

SETTINGS = [  # (name, generate keyword arguments shared by both libraries)
    ("greedy", dict(num_beams=1)),
    ("greedy-min3", dict(num_beams=1, min_new_tokens=3)),
    ("beam4", dict(num_beams=4)),
    ("beam4-early", dict(num_beams=4, early_stopping=True)),
    ("beam3-lp0.6", dict(num_beams=3, length_penalty=0.6)),
    ("beam4-lp2-early", dict(num_beams=4, length_penalty=2.0, early_stopping=True)),
    ("beam4-min2", dict(num_beams=4, min_new_tokens=2)),
]
MAX_NEW = 12


@pytest.fixture(scope="module")
def pair(variant, hf_folder):  # every variant (conftest.py)
    folder = hf_folder(variant, eos_likely=True)
    return variant, load_hf(variant, folder), T5.from_pretrained(folder)


def test_same_tokens_as_transformers(pair):
    variant, hf, model = pair
    input_ids, attention_mask, _ = padded_batch(model.config.vocab_size, seed=7, batch=6, src_len=10)
    eos_steps = set()
    for name, kwargs in SETTINGS:
        # use_cache=False: transformers' cached generate breaks on a decoder deeper than the encoder, and its
        # cached logits differ from uncached ones by ~1e-5, which can flip near-ties.
        ref = hf.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=MAX_NEW,
                          do_sample=False, use_cache=False, **kwargs)
        out = model.generate(input_ids, attention_mask, max_new_tokens=MAX_NEW, **kwargs)
        assert out.shape == ref.shape, name
        assert torch.equal(out, ref), f"{variant} {name}:\n{out}\n{ref}"
        for row in out:
            ends = (row[1:] == model.config.eos_token_id).nonzero()
            eos_steps.add(int(ends[0]) + 1 if len(ends) else None)
    # the comparison covered rows that ended early at different steps and rows that ran to the limit
    assert None in eos_steps and len(eos_steps - {None}) >= 2, eos_steps


def test_batched_rows_equal_single_prompts(pair):
    _, _, model = pair
    input_ids, attention_mask, _ = padded_batch(model.config.vocab_size, seed=8, batch=4, src_len=10)
    for kwargs in (dict(num_beams=1), dict(num_beams=3)):
        batched = model.generate(input_ids, attention_mask, max_new_tokens=8, **kwargs)
        for row in range(input_ids.shape[0]):
            length = int(attention_mask[row].sum())
            single = model.generate(input_ids[row:row + 1, :length], max_new_tokens=8, **kwargs)[0]
            fill = 1 if kwargs["num_beams"] > 1 else 0
            padded = torch.cat([single, torch.full((batched.shape[1] - len(single),), fill)])
            assert torch.equal(batched[row], padded), (row, kwargs)


def test_cached_decoding_equals_full_recompute(pair):
    _, _, model = pair
    input_ids, attention_mask, _ = padded_batch(model.config.vocab_size, seed=9, batch=3, src_len=10)
    tokens = torch.randint(3, model.config.vocab_size, (3, 10))
    tokens[:, 0] = 0
    with torch.no_grad():
        encoded = model.encode(input_ids, attention_mask)
        full = model.decode(tokens, encoded, attention_mask)  # (B, T, V) all positions at once
        cache = model.new_cache(10)
        stepwise = torch.cat([model.decode(tokens[:, t:t + 1], encoded, attention_mask, cache=cache)
                              for t in range(10)], dim=1)
        # a prefill of several tokens, then single steps, is the same again
        cache = model.new_cache(10)
        mixed = torch.cat([model.decode(tokens[:, :4], encoded, attention_mask, cache=cache)] +
                          [model.decode(tokens[:, t:t + 1], encoded, attention_mask, cache=cache)
                           for t in range(4, 10)], dim=1)
    assert (stepwise - full).abs().max().item() <= 1e-5
    assert (mixed - full).abs().max().item() <= 1e-5


def test_sampling_matches_transformers_with_the_same_seed(pair):
    """Same global seed, same filters: transformers and minit5 draw the same tokens (logits agree to ~1e-6)."""
    _, hf, model = pair
    input_ids, attention_mask, _ = padded_batch(model.config.vocab_size, seed=10, batch=4, src_len=10)
    for kwargs in (dict(top_k=0), dict(top_k=5, temperature=0.7), dict(top_k=0, top_p=0.8, temperature=1.3)):
        torch.manual_seed(123)
        ref = hf.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=MAX_NEW,
                          do_sample=True, use_cache=False, **kwargs)
        torch.manual_seed(123)
        out = model.generate(input_ids, attention_mask, max_new_tokens=MAX_NEW, do_sample=True, **kwargs)
        assert torch.equal(out, ref), kwargs


def test_generator_makes_sampling_reproducible(pair):
    _, _, model = pair
    input_ids, attention_mask, _ = padded_batch(model.config.vocab_size, seed=10, batch=4, src_len=10)
    runs = [model.generate(input_ids, attention_mask, max_new_tokens=10, do_sample=True, top_p=0.9,
                           generator=torch.Generator().manual_seed(seed)) for seed in (1, 1, 2)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


# ------------------------------------------------------------------ sampling filters vs transformers'
def random_scores(seed=0, batch=5, vocab=50):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(batch, vocab, generator=g) * 3
    scores[0, :10] = 2.5  # ties around the cut
    scores[1] = 0.0  # a flat row
    return scores


@pytest.mark.parametrize("k", [1, 3, 10, 49, 50, 80])
def test_top_k_equals_transformers(k):
    scores = random_scores(k)
    expected = TopKLogitsWarper(top_k=k)(None, scores.clone())
    assert torch.equal(top_k_filter(scores.clone(), k), expected)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.8, 0.95, 0.999, 1.0])
def test_top_p_equals_transformers(p):
    scores = random_scores(int(p * 100))
    expected = TopPLogitsWarper(top_p=p)(None, scores.clone())
    assert torch.equal(top_p_filter(scores.clone(), p), expected)


@pytest.mark.parametrize("temperature,k,p", [(0.5, 5, 0.9), (1.5, 0, 0.7), (1.0, 20, 1.0), (0.8, 3, 0.3)])
def test_filter_chain_equals_transformers_order(temperature, k, p):
    scores = random_scores(7)
    expected = scores.clone()
    for warper in [TemperatureLogitsWarper(temperature)] + ([TopKLogitsWarper(k)] if k else []) + \
            ([TopPLogitsWarper(p)] if p < 1 else []):
        expected = warper(None, expected)
    assert torch.equal(sample_filters(scores.clone(), temperature, k, p), expected)


# ------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    from minit5 import T5Config
    return T5(T5Config(vocab_size=64, d_model=16, d_ff=32, d_kv=4, num_heads=4, num_layers=1,
                       feed_forward_proj="gated-gelu", tie_word_embeddings=False)).eval()


@pytest.mark.parametrize("kwargs,message", [
    (dict(do_sample=True, temperature=0.0), "temperature must be > 0"),
    (dict(do_sample=True, temperature=-1.0), "temperature must be > 0"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
    (dict(num_beams=0), "num_beams must be an integer >= 1"),
    (dict(max_new_tokens=0), "max_new_tokens must be a positive integer"),
    (dict(top_k=-1), "top_k must be an integer >= 0"),
    (dict(min_new_tokens=50, max_new_tokens=5), "min_new_tokens must be between 0 and max_new_tokens"),
    (dict(do_sample=True, num_beams=2), "sampling with beams"),
    (dict(step="quick"), "step must be one of 'readable', 'fast', 'compiled', got 'quick'"),
])
def test_bad_arguments(small_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_model.generate(torch.tensor([[5, 6, 1]]), **kwargs)


def test_empty_prompts(small_model):
    with pytest.raises(ValueError, match="the prompt is empty"):
        small_model.generate(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="a prompt in the batch is empty"):
        small_model.generate(torch.tensor([[5, 6, 1], [0, 0, 0]]))
    with pytest.raises(ValueError, match="LongTensor"):
        small_model.generate([[5, 6, 1]])


def test_long_prompt_warns(small_model):
    with pytest.warns(UserWarning, match="the prompt has 600 tokens"):
        small_model.generate(torch.randint(3, 60, (1, 600)), max_new_tokens=1)
