"""Step 6: the stacks and the whole model: masks, shift_right, the output layer and the loss. Compared with minit5."""

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
    config = tiny_config()
    model = impl.T5(config)
    labels = torch.tensor([[5, 9, 12, 1], [6, 1, -100, -100]])
    expected = torch.tensor([[0, 5, 9, 12], [0, 6, 1, 0]])
    got = model.shift_right(labels)
    assert isinstance(got, torch.Tensor) and got.shape == labels.shape, \
        f"shift_right should keep the shape {tuple(labels.shape)}: drop the last label, prepend the start token"
    if torch.equal(got, expected):
        return
    hints = []
    if (got == -100).any():
        hints.append("-100 (\"ignore this label\") is not a token: replace it by pad_token_id (0) in the decoder input.")
    if not (got[:, 0] == config.decoder_start_token_id).all():
        hints.append("each row must start with decoder_start_token_id (0).")
    if torch.equal(got[:, :-1], labels[:, 1:]):
        hints.append("you shifted left: the decoder sees [start, y1, ..., y(T-1)] and predicts [y1, ..., yT].")
    raise AssertionError(f"shift_right({labels.tolist()}) gave {got.tolist()}, expected {expected.tolist()}. "
                         + " ".join(hints))


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


def test_decoding_with_a_cache_matches_a_full_decode(impl):
    config = tiny_config()
    yours, ref = pair(impl, config)
    input_ids, attention_mask, labels = batch(config)
    decoder_input_ids = ref.shift_right(labels.clamp(min=2))
    with torch.no_grad():
        encoder_output = ref.encode(input_ids, attention_mask)
        full = ref.decode(decoder_input_ids, encoder_output, attention_mask)
        cache = [LayerCache(5) for _ in ref.decoder.blocks]
        steps = [yours.decode(decoder_input_ids[:, :2], encoder_output, attention_mask, cache=cache)]
        steps += [yours.decode(decoder_input_ids[:, t:t + 1], encoder_output, attention_mask, cache=cache)
                  for t in (2, 3, 4)]
        check_close(torch.cat(steps, dim=1), full, "T5.decode with a cache (2 tokens, then 1 at a time)", atol=1e-4,
                    hint="With a cache, past = cache[0].length positions are already there: the position bias of "
                         "the new queries starts at query_offset = past, and the causal mask covers past + T keys.")
