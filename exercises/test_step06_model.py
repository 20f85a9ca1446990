"""Step 6: the stacks and the whole model: masks, shift_right, the output layer and the loss. Compared with minit5.

(PYTEST_DONT_REWRITE: a failed check shows its own message, not pytest's account of the expression.)"""

import torch
import torch.nn.functional as F

from minit5.model import LayerCache, padding_mask

from ._support import check_close, copy_weights, prompts, reference_model, tiny_config, v1_0_config

STEP = "step06_model"


def pair(impl, config):
    ref = reference_model(config)
    return copy_weights(impl.T5(config), ref, "your T5"), ref


def batch(config):
    input_ids, attention_mask = prompts(config, batch=3, length=7)
    labels = torch.tensor([[5, 9, 12, 7, 1], [6, 8, 1, -100, -100], [4, 1, -100, -100, -100]])
    return input_ids, attention_mask, labels


def test_shift_right(impl):
    labels = torch.tensor([[5, 9, 12, 1], [6, 1, -100, -100]])
    # flan-T5 starts the decoder with pad (0); the second config starts it with 2, to see the config is read.
    for start, expected in [(0, torch.tensor([[0, 5, 9, 12], [0, 6, 1, 0]])),
                            (2, torch.tensor([[2, 5, 9, 12], [2, 6, 1, 0]]))]:
        config = tiny_config(decoder_start_token_id=start)
        model = impl.T5(config)
        got = model.shift_right(labels)
        assert isinstance(got, torch.Tensor) and got.shape == labels.shape, \
            f"shift_right should keep the shape {tuple(labels.shape)}: drop the last label, prepend the start token"
        if torch.equal(got, expected):
            continue
        hints = []
        if (got == -100).any():
            hints.append("-100 (\"ignore this label\") is not a token: replace it by pad_token_id (0) in the decoder "
                         "input.")
        if not (got[:, 0] == start).all():
            hints.append(f"each row must start with config.decoder_start_token_id ({start} here).")
        if torch.equal(got[:, :-1], labels[:, 1:]):
            hints.append("you shifted left: the decoder sees [start, y1, ..., y(T-1)] and predicts [y1, ..., yT].")
        raise AssertionError(f"shift_right({labels.tolist()}) with decoder_start_token_id = {start} gave "
                             f"{got.tolist()}, expected {expected.tolist()}. " + " ".join(hints))


def test_encoder_matches_minit5(impl):
    config = tiny_config()
    yours, ref = pair(impl, config)
    input_ids, attention_mask, _ = batch(config)
    with torch.no_grad():
        expected = ref.encode(input_ids, attention_mask)
        emb = ref.embed(input_ids)
        check_close(yours.encode(input_ids, attention_mask), expected, "T5.encode(input_ids, attention_mask)",
                    mistakes=[("the padding mask is not applied: padded keys must get the very negative bias.",
                               ref.encode(input_ids, None)),
                              ("the embeddings are multiplied by sqrt(d_model) (a GPT/Transformer habit); T5 does "
                               "not scale them.", ref.encoder(emb * config.d_model ** 0.5, padding_mask(attention_mask, emb.dtype)))],
                    hint="Embed (no scaling, no positions), then the encoder stack with padding_mask(attention_mask).")


def test_logits_and_loss_match_minit5(impl):
    for config, name in [(tiny_config(), "flan-T5 (gated GELU, separate lm_head)"),
                         (v1_0_config(), "T5 v1.0 (ReLU, lm_head tied to the embedding)")]:
        yours, ref = pair(impl, config)
        input_ids, attention_mask, labels = batch(config)
        with torch.no_grad():
            logits, loss = yours(input_ids, attention_mask, labels=labels)
            ref_logits, ref_loss = ref(input_ids, attention_mask, labels=labels)
            mistakes = []
            if config.scale_decoder_outputs:
                mistakes.append((f"the decoder output is not rescaled: with a tied lm_head (T5 v1.0) multiply it by "
                                 f"d_model**-0.5 before the output layer (config.scale_decoder_outputs).",
                                 ref_logits * config.d_model ** 0.5))
            mistakes.append(("the encoder's padding mask is not used in cross-attention: the rows with padding "
                             "(1 and 2) differ, and row 0, which has none, matches. decode(..., attention_mask) turns "
                             "the encoder's attention_mask into the cross-attention mask (padding_mask).",
                             ref.decode(ref.shift_right(labels), ref.encode(input_ids, attention_mask), None)))
            check_close(logits, ref_logits, f"T5(input_ids, attention_mask, labels) logits, {name}", atol=1e-4,
                        mistakes=mistakes,
                        hint="Decoder input = shift_right(labels); causal mask in decoder self-attention; the "
                             "encoder's padding mask in cross-attention.")
            per_sequence = torch.stack([F.cross_entropy(ref_logits[i], labels[i], ignore_index=-100)
                                        for i in range(len(labels))]).mean()
            check_close(loss, ref_loss, f"the loss, {name}", atol=1e-5,
                        mistakes=[("the loss is averaged per sequence, then over sequences. T5's loss is one mean "
                                   "over every label that is not -100 in the batch.", per_sequence),
                                  ("-100 labels are counted: pass ignore_index=-100 to the cross-entropy.",
                                   F.cross_entropy(ref_logits.reshape(-1, config.vocab_size),
                                                   labels.clamp(min=0).reshape(-1)))])


def test_forward_takes_decoder_input_ids(impl):
    config = tiny_config()
    yours, ref = pair(impl, config)
    input_ids, attention_mask, labels = batch(config)
    decoder_input_ids = torch.tensor([[0, 7, 7, 3, 9], [0, 4, 2, 0, 0], [0, 5, 0, 0, 0]])  # not shift_right(labels)
    with torch.no_grad():
        logits, loss = yours(input_ids, attention_mask, decoder_input_ids=decoder_input_ids, labels=labels)
        expected, expected_loss = ref(input_ids, attention_mask, decoder_input_ids=decoder_input_ids, labels=labels)
        check_close(logits, expected, "T5(input_ids, attention_mask, decoder_input_ids=..., labels=...) logits",
                    atol=1e-4, mistakes=[("decoder_input_ids are ignored: when they are given, the decoder reads "
                                          "them; only without them are they shift_right(labels).",
                                          ref(input_ids, attention_mask, labels=labels)[0]),
                                         ("the encoder's padding mask is not used in cross-attention: the rows with "
                                          "padding (1 and 2) differ, and row 0 matches.",
                                          ref.decode(decoder_input_ids, ref.encode(input_ids, attention_mask), None))])
        check_close(loss, expected_loss, "the loss with decoder_input_ids given", atol=1e-5)
        logits, loss = yours(input_ids, attention_mask, decoder_input_ids=decoder_input_ids)
        assert loss is None, "T5(input_ids, attention_mask, decoder_input_ids=...) without labels returns (logits, None)"
        check_close(logits, expected, "T5(input_ids, attention_mask, decoder_input_ids=...) logits, no labels",
                    atol=1e-4)


def test_decoding_with_a_cache_matches_a_full_decode(impl):
    config = tiny_config()
    yours, ref = pair(impl, config)
    input_ids, attention_mask, labels = batch(config)
    decoder_input_ids = ref.shift_right(labels.clamp(min=2))
    with torch.no_grad():
        encoder_output = ref.encode(input_ids, attention_mask)
        full = ref.decode(decoder_input_ids, encoder_output, attention_mask)
        no_cross_mask = []  # what decoding with a cache gives when cross-attention ignores the padding
        cache = [LayerCache(5) for _ in ref.decoder.blocks]
        for start, end in [(0, 2), (2, 3), (3, 4), (4, 5)]:
            no_cross_mask.append(ref.decode(decoder_input_ids[:, start:end], encoder_output, None, cache=cache))
        cache = [LayerCache(5) for _ in ref.decoder.blocks]
        steps = [yours.decode(decoder_input_ids[:, :2], encoder_output, attention_mask, cache=cache)]
        steps += [yours.decode(decoder_input_ids[:, t:t + 1], encoder_output, attention_mask, cache=cache)
                  for t in (2, 3, 4)]
        without_cache_is_right = torch.allclose(yours.decode(decoder_input_ids, encoder_output, attention_mask), full,
                                                atol=1e-4, rtol=1e-5)
        check_close(torch.cat(steps, dim=1), full, "T5.decode with a cache (2 tokens, then 1 at a time)", atol=1e-4,
                    mistakes=[("the encoder's padding mask is not used in cross-attention while decoding with a "
                               "cache: pass padding_mask(attention_mask) as the decoder's cross mask whether or not "
                               "there is a cache.", torch.cat(no_cross_mask, dim=1))],
                    hint="Your decode without a cache is right, so the cache is handled wrongly: with a cache, "
                         "past = cache[0].length positions are already there, so the position bias of the new "
                         "queries starts at query_offset = past, and the causal mask covers past + T keys."
                    if without_cache_is_right else
                    "Your decode gives other logits even without a cache: make test_logits_and_loss_match_minit5 "
                    "pass first.")
