"""Step 5: a pre-norm block, encoder and decoder. Compared with minit5/model.py Block.

(PYTEST_DONT_REWRITE: a failed check shows its own message, not pytest's account of the expression.)"""

import torch

from minit5 import model as reference

from ._support import check_close, copy_weights, tiny_config

STEP = "step05_block"


def inputs():
    torch.manual_seed(1)
    x, context = torch.randn(2, 5, 32), torch.randn(2, 6, 32)
    self_bias = torch.randn(1, 4, 5, 5)
    cross_bias = reference.padding_mask(torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]]), torch.float32)
    return x, context, self_bias, cross_bias


def post_norm(ref, x, self_bias, context=None, cross_bias=None):
    """What a post-norm block (the 2017 Transformer's order) gives with these weights."""
    x = ref.self_attn_norm(x + ref.self_attn(x, self_bias))
    if context is not None:
        x = ref.cross_attn_norm(x + ref.cross_attn(x, cross_bias, context))
    return ref.ffn_norm(x + ref.ffn(x))


def test_encoder_block_matches_minit5(impl):
    config = tiny_config()
    torch.manual_seed(0)
    ref = reference.Block(config, is_decoder=False, has_position_bias=True).eval()
    yours = copy_weights(impl.Block(config, is_decoder=False, has_position_bias=True), ref, "your encoder Block")
    assert not hasattr(yours, "cross_attn"), "an encoder block has no cross-attention"
    x, _, self_bias, _ = inputs()
    with torch.no_grad():
        check_close(yours(x, self_bias), ref(x, self_bias), "encoder Block(x, bias)",
                    mistakes=[("the norm comes after the residual sum (post-norm). T5 normalises the input of each "
                               "sublayer: x = x + sublayer(norm(x)).", post_norm(ref, x, self_bias)),
                              ("the residual connection is missing: x = x + sublayer(norm(x)).",
                               ref.ffn(ref.ffn_norm(ref.self_attn(ref.self_attn_norm(x), self_bias))))],
                    hint="Pre-norm: x = x + self_attn(self_attn_norm(x)); x = x + ffn(ffn_norm(x)).")
    without = impl.Block(config, is_decoder=False, has_position_bias=False)
    assert getattr(without, "position_bias", 0) is None, \
        "Block(..., has_position_bias=False) should set self.position_bias = None (only block 0 owns the table)"


def test_decoder_block_matches_minit5(impl):
    config = tiny_config()
    torch.manual_seed(0)
    ref = reference.Block(config, is_decoder=True, has_position_bias=True).eval()
    yours = copy_weights(impl.Block(config, is_decoder=True, has_position_bias=True), ref, "your decoder Block")
    x, context, self_bias, cross_bias = inputs()
    with torch.no_grad():
        no_cross = x + ref.self_attn(ref.self_attn_norm(x), self_bias)
        no_cross = no_cross + ref.ffn(ref.ffn_norm(no_cross))
        check_close(yours(x, self_bias, context, cross_bias), ref(x, self_bias, context, cross_bias),
                    "decoder Block(x, bias, context, cross_bias)",
                    mistakes=[("the cross-attention sublayer is skipped: with a context, attend to it between "
                               "self-attention and the FFN.", no_cross),
                              ("the norm comes after the residual sum (post-norm).",
                               post_norm(ref, x, self_bias, context, cross_bias))],
                    hint="Decoder: self-attention, then cross-attention to the context, then the FFN, each "
                         "x = x + sublayer(norm(x)) with its own norm.")


def test_decoder_block_passes_the_cache_to_both_attentions(impl):
    """Step 8's cache goes through the block: self-attention appends to it, cross-attention fills cache.cross once."""
    config = tiny_config()
    torch.manual_seed(0)
    ref = reference.Block(config, is_decoder=True, has_position_bias=True).eval()
    yours = copy_weights(impl.Block(config, is_decoder=True, has_position_bias=True), ref, "your decoder Block")
    x, context, _, cross_bias = inputs()
    causal = reference.causal_mask(5, 0, torch.float32, "cpu")
    with torch.no_grad():
        full = ref(x, causal, context, cross_bias)
        cache = reference.LayerCache(5)
        steps = [yours(x[:, :3], causal[:, :, :3, :3], context, cross_bias, cache=cache)]
        assert cache.length == 3, (
            f"after a decoder block ran 3 positions with a cache, cache.length is {cache.length}, expected 3: pass "
            f"the cache to self-attention (self.self_attn(..., cache=cache)).")
        assert cache.cross is not None, (
            "the decoder block ran with a cache, but cache.cross is still None: pass the cache to the "
            "cross-attention too (self.cross_attn(..., context, cache=cache)), so that the keys and values of the "
            "encoder output are computed once, not at every generated token.")
        steps += [yours(x[:, t:t + 1], None, context, cross_bias, cache=cache) for t in (3, 4)]
        check_close(torch.cat(steps, dim=1), full, "decoder Block run with a cache, 3 positions then 1 then 1",
                    hint="Give the same cache to both attentions; the block itself keeps nothing between calls.")
