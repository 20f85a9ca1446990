"""Step 8: the KV cache and greedy decoding. Compared with minit5/generate.py and transformers' generate.

(PYTEST_DONT_REWRITE: a failed check shows its own message, not pytest's account of the expression.)"""

import torch

from minit5.generate import generate as reference_generate

from ._support import copy_weights, make_eos_likely, prompts, reference_model, tiny_config, transformers_model

STEP = "step08_greedy"


def test_kv_cache_appends_and_selects(impl):
    cache = impl.KVCache(max_len=6)
    assert cache.length == 0 and cache.cross is None, "a new KVCache has length 0 and cross None"
    k1, v1 = torch.randn(2, 4, 3, 16), torch.randn(2, 4, 3, 16)
    k, v = cache.append(k1, v1)
    assert cache.length == 3 and torch.equal(k, k1) and torch.equal(v, v1), \
        "after append(k, v) with 3 positions, length is 3 and append returns those keys and values"
    k2, v2 = torch.randn(2, 4, 1, 16), torch.randn(2, 4, 1, 16)
    k, v = cache.append(k2, v2)
    assert cache.length == 4 and torch.equal(k, torch.cat([k1, k2], 2)) and torch.equal(v, torch.cat([v1, v2], 2)), \
        "append returns every position so far, (B, H, length, Dh), oldest first"
    cache.cross = (torch.randn(2, 4, 5, 16), torch.randn(2, 4, 5, 16))
    cross = cache.cross
    cache.select(torch.tensor([1, 1]))
    k, v = cache.append(k2, v2)
    assert torch.equal(k[0, :, :3], k1[1]) and torch.equal(k[1, :, :3], k1[1]), \
        "select(rows) keeps the batch rows `rows`, in that order (beam search reorders its beams with it)"
    assert torch.equal(cache.cross[0][0], cross[0][1]), "select(rows) reorders the cross-attention keys and values too"


def test_greedy_matches_minit5_and_transformers(impl, tmp_path):
    config = tiny_config()
    ref = make_eos_likely(reference_model(config, seed=3), margin=0.4)
    yours = copy_weights(impl.T5(config), ref)
    input_ids, attention_mask = prompts(config, batch=4)
    expected = reference_generate(ref, input_ids, attention_mask, max_new_tokens=8, step="readable")
    lengths = (expected != 0).sum(1)
    assert lengths.min() < lengths.max() and (expected == config.eos_token_id).any(), \
        "the test model should end rows at different steps (the test setup is broken)"
    hf = transformers_model(ref, tmp_path)
    with torch.no_grad():
        hf_out = hf.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=8, do_sample=False,
                             num_beams=1)
    assert torch.equal(hf_out, expected), "minit5 and transformers disagree (the reference is broken)"
    got = impl.greedy_generate(yours, input_ids, attention_mask, max_new_tokens=8)
    assert isinstance(got, torch.Tensor) and got.dim() == 2 and got.shape[0] == 4, \
        f"greedy_generate should return a (B, 1 + steps) tensor of token ids, got {getattr(got, 'shape', got)}"
    if torch.equal(got, expected):
        return
    lines = [f"greedy_generate gave\n{got.tolist()}\nexpected (minit5 and transformers)\n{expected.tolist()}"]
    if got.shape[1] == expected.shape[1] and not (got[:, 0] == 0).all():
        lines.append("Each row starts with the decoder start token (0).")
    if got.shape[1] != expected.shape[1]:
        lines.append("Stop as soon as every row has produced EOS (1), or after max_new_tokens new tokens.")
    for row in range(len(expected)):
        eos = (expected[row] == config.eos_token_id).nonzero()
        if len(eos) and got.shape[1] > eos[0, 0] + 1 and torch.equal(got[row, :eos[0, 0] + 1], expected[row, :eos[0, 0] + 1]) \
                and (got[row, eos[0, 0] + 1:] != 0).any():
            lines.append(f"Row {row} went on after its EOS: a row that has finished gets pad (0) at every later step.")
            break
    raise AssertionError("\n".join(lines))


def ended_early_batch(impl):
    """Four prompts whose greedy answers all end with EOS before max_new_tokens (10): after 6, 3, 8 and 4 tokens."""
    config = tiny_config()
    ref = make_eos_likely(reference_model(config, seed=6), margin=0.3)
    yours = copy_weights(impl.T5(config), ref)
    input_ids, attention_mask = prompts(config, batch=8)
    rows = torch.tensor([0, 2, 3, 7])
    return yours, ref, input_ids[rows], attention_mask[rows]


def test_greedy_stops_when_every_row_has_ended(impl):
    yours, ref, input_ids, attention_mask = ended_early_batch(impl)
    expected = reference_generate(ref, input_ids, attention_mask, max_new_tokens=10, step="readable")
    assert expected.shape[1] < 11 and (expected == 1).any(1).all(), \
        "every row of this batch should end before 10 new tokens (the test setup is broken)"
    got = impl.greedy_generate(yours, input_ids, attention_mask, max_new_tokens=10)
    if isinstance(got, torch.Tensor) and torch.equal(got, expected):
        return
    lines = [f"greedy_generate(..., max_new_tokens=10) on a batch whose rows all end early gave\n"
             f"{got.tolist() if isinstance(got, torch.Tensor) else got}\nexpected\n{expected.tolist()}"]
    if isinstance(got, torch.Tensor) and got.shape[1] > expected.shape[1] and torch.equal(got[:, :expected.shape[1]],
                                                                                          expected):
        lines.append(f"Your rows are right, but the loop went on after every row had produced EOS (all rows end by "
                     f"token {expected.shape[1] - 1}): stop as soon as every row is finished; the output then has "
                     f"1 + (the longest answer) columns, not 1 + max_new_tokens.")
    raise AssertionError("\n".join(lines))


def test_greedy_infers_the_attention_mask(impl):
    yours, ref, input_ids, attention_mask = ended_early_batch(impl)
    expected = reference_generate(ref, input_ids, attention_mask, max_new_tokens=10, step="readable")
    got = impl.greedy_generate(yours, input_ids, None, max_new_tokens=10)
    if isinstance(got, torch.Tensor) and torch.equal(got, expected):
        return
    with_mask = impl.greedy_generate(yours, input_ids, attention_mask, max_new_tokens=10)
    advice = ("Without an attention_mask, infer it: (input_ids != config.pad_token_id).long(), so the padding stays "
              "hidden from the encoder and from cross-attention."
              if isinstance(with_mask, torch.Tensor) and torch.equal(with_mask, expected) else
              "Your answer WITH the mask differs too: make test_greedy_stops_when_every_row_has_ended pass first.")
    raise AssertionError(f"greedy_generate(model, input_ids, attention_mask=None) on padded prompts gave\n"
                         f"{got.tolist() if isinstance(got, torch.Tensor) else got}\nexpected (the same as with the "
                         f"mask)\n{expected.tolist()}\n{advice}")


def test_greedy_uses_the_cache(impl):
    config = tiny_config()
    ref = reference_model(config, seed=3)
    yours = copy_weights(impl.T5(config), ref)
    input_ids, attention_mask = prompts(config, batch=2)
    calls, encodes = [], []
    decode, encode = yours.decode, yours.encode

    def counting_decode(ids, *args, **kwargs):  # decode(decoder_input_ids, encoder_output, attention_mask, cache)
        calls.append((tuple(ids.shape), kwargs.get("cache", args[2] if len(args) > 2 else None)))
        return decode(ids, *args, **kwargs)

    def counting_encode(*args, **kwargs):
        encodes.append(1)
        return encode(*args, **kwargs)

    yours.decode, yours.encode = counting_decode, counting_encode
    impl.greedy_generate(yours, input_ids, attention_mask, max_new_tokens=5)
    assert len(encodes) == 1, f"the encoder ran {len(encodes)} times: run it once, before the loop"
    assert len(calls) == 5, f"model.decode was called {len(calls)} times for 5 new tokens: once per token"
    assert all(shape == (2, 1) for shape, _ in calls), (
        f"model.decode got decoder inputs of shapes {[s for s, _ in calls]}: with a KV cache, each step feeds only "
        f"the newest token (B, 1); the earlier positions are in the cache.")
    assert all(c is not None and c is calls[0][1] for _, c in calls), \
        "pass the same cache (new_cache(model, max_new_tokens)) to model.decode at every step"
