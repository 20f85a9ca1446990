"""Step 3: masks and attention without 1/sqrt(d). Compared with minit5/model.py.

(PYTEST_DONT_REWRITE: a failed check shows its own message, not pytest's account of the expression.)"""

import math

import torch
import torch.nn.functional as F

from minit5 import model as reference
from minit5.model import LayerCache

from ._support import check_close, tiny_config

STEP = "step03_attention"


def mask_value_problem(got, expected, what: str) -> str:
    """If the hidden positions hold another number than torch.finfo(dtype).min, say which and why it matters."""
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape or got.dtype != expected.dtype:
        return ""
    hidden = expected != 0
    if not hidden.any() or not torch.equal(got[~hidden], expected[~hidden]):
        return ""
    values = got[hidden].unique()
    if len(values) != 1 or values.item() == expected[hidden][0].item():
        return ""
    value, smallest = values.item(), torch.finfo(expected.dtype).min
    if value == -math.inf:
        why = ("-inf breaks a query whose keys are all hidden (softmax of all -inf is 0/0 = NaN), and -inf plus "
               "+inf anywhere is NaN")
    else:
        why = ("the masks must equal transformers' bit for bit (the mask is added to the position bias, and "
               "masked scores must stay below every real one)")
    return (f"{what}: the hidden positions hold {value:g}, not torch.finfo({expected.dtype}).min = {smallest:g}, "
            f"the most negative number of the mask's dtype: {why}. Use torch.finfo(dtype).min.")


def call_mask(make_mask, what, *args):
    try:
        return make_mask(*args)
    except RuntimeError as e:
        if "overflow" not in str(e):
            raise
        raise AssertionError(f"{what} raised {e!r}: the very negative number must be the mask dtype's own, "
                             f"torch.finfo(dtype).min (float32's does not fit in float16).") from None


def test_padding_mask(impl):
    attention_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    for dtype in (torch.float32, torch.float16):  # a model in float16 needs its masks in float16
        expected = reference.padding_mask(attention_mask, dtype)
        what = f"padding_mask([[1,1,1,1],[1,1,0,0]], {dtype})"
        got = call_mask(impl.padding_mask, what, attention_mask, dtype)
        problem = mask_value_problem(got, expected, what)
        assert not problem, problem
        check_close(got, expected, what, atol=0, rtol=0,
                    mistakes=[("the mask is inverted: 0 marks padding, which must get the very negative number.",
                               reference.padding_mask(1 - attention_mask, dtype))],
                    hint="Shape (B, 1, 1, S): one row per example, broadcast over heads and queries; 0 where a key may "
                         "be seen, torch.finfo(dtype).min where it is padding, in the dtype asked for.")
    assert impl.padding_mask(None, torch.float32) is None, "padding_mask(None, dtype) should return None"


def test_causal_mask(impl):
    for query_len, past, dtype in [(4, 0, torch.float32), (3, 2, torch.float32), (3, 2, torch.bfloat16)]:
        expected = reference.causal_mask(query_len, past, dtype, "cpu")
        what = f"causal_mask(query_len={query_len}, past={past}, {dtype})"
        got = call_mask(impl.causal_mask, what, query_len, past, dtype, "cpu")
        problem = mask_value_problem(got, expected, what)
        assert not problem, problem
        neg = torch.finfo(dtype).min
        q = torch.arange(past, past + query_len)[:, None]
        k = torch.arange(past + query_len)[None, :]
        zeros = torch.zeros(query_len, past + query_len, dtype=dtype)
        mistakes = [
            ("the diagonal is masked: a position may attend to itself (mask key > query, not key >= query).",
             zeros.masked_fill(k >= q, neg)[None, None]),
            ("the mask is shifted by one: position i sees key i + 1, one step into the future.",
             zeros.masked_fill(k > q + 1, neg)[None, None]),
            ("the cached positions are ignored: query i is at position past + i.",
             zeros.masked_fill(k > q - past, neg)[None, None]),
            ("the mask is the wrong way round: it hides the past and shows the future.",
             zeros.masked_fill(k < q, neg)[None, None]),
        ]
        check_close(got, expected, what, atol=0, rtol=0, mistakes=mistakes,
                    hint="Shape (1, 1, T, past + T): query i sits at position past + i and may see keys 0..past + i.")
    assert impl.causal_mask(1, 5, torch.float32, "cpu") is None, \
        "causal_mask(1, past, ...) should return None: one new token may see every cached position"


def test_attention_has_no_scaling(impl):
    torch.manual_seed(0)
    d_kv = 16
    q, k, v = torch.randn(2, 4, 5, d_kv), torch.randn(2, 4, 7, d_kv), torch.randn(2, 4, 7, d_kv)
    bias = torch.randn(1, 4, 5, 7)
    expected = reference.attention(q, k, v, bias, 0.0, False)
    scores = q @ k.transpose(-1, -2)
    mistakes = [
        (f"the scores are divided by sqrt(d_kv) = {math.sqrt(d_kv):g}, so they are {math.sqrt(d_kv):g}x smaller than "
         f"T5's (8x with flan-T5's d_kv = 64). T5 does not scale: the factor is inside the trained q weights.",
         F.softmax(scores / math.sqrt(d_kv) + bias, -1) @ v),
        ("the bias (position bias + mask) is not added to the scores.", F.softmax(scores, -1) @ v),
        ("the bias is added after the softmax; add it to the scores before.", (F.softmax(scores, -1) + bias) @ v),
        ("the softmax runs over the wrong dimension: normalise over the keys (the last one).",
         F.softmax(scores + bias, -2) @ v),
    ]
    check_close(impl.attention(q, k, v, bias), expected, "attention(q, k, v, bias)", mistakes=mistakes,
                hint="softmax(q·kᵀ + bias)·v, with no 1/sqrt(d) (docs/architecture.md section 3).")
    check_close(impl.attention(q, k, v, None), reference.attention(q, k, v, None, 0.0, False),
                "attention(q, k, v, bias=None)", hint="bias may be None (cross-attention without padding).")


def make_pair(impl, config):
    torch.manual_seed(0)
    ref = reference.Attention(config).eval()
    yours = impl.Attention(config)
    for name in ("q", "k", "v", "o"):
        assert hasattr(yours, name), f"Attention needs the four bias-free linear maps self.q, self.k, self.v, self.o (no self.{name})"
    missing = {"q", "k", "v", "o"} - {n.split(".")[0] for n, _ in yours.named_parameters()}
    assert not missing and all(p.ndim == 2 for p in yours.parameters()), \
        "Attention's parameters should be q.weight, k.weight, v.weight, o.weight: nn.Linear(..., bias=False)"
    shapes = {n: tuple(p.shape) for n, p in yours.named_parameters()}
    assert shapes.get("q.weight") == (64, 32) and shapes.get("o.weight") == (32, 64), (
        f"with d_model 32, 4 heads and d_kv 16, q should be 32 → 64 (weight (64, 32)) and o 64 → 32; got {shapes}. "
        f"The inner width is num_heads * d_kv, which need not be d_model.")
    yours.load_state_dict(ref.state_dict())
    return yours.eval(), ref


def test_attention_module_self_and_cross(impl):
    config = tiny_config()
    yours, ref = make_pair(impl, config)
    torch.manual_seed(1)
    x, context = torch.randn(2, 5, 32), torch.randn(2, 6, 32)
    bias = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        check_close(yours(x, bias), ref(x, bias), "Attention(x, bias): self-attention",
                    hint="Split into heads with view(B, T, H, Dh).transpose(1, 2); merge back after attention.")
        cross_bias = reference.padding_mask(torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]]), torch.float32)
        check_close(yours(x, cross_bias, context), ref(x, cross_bias, context),
                    "Attention(x, bias, context): cross-attention",
                    hint="Cross-attention: queries from x, keys and values from the context (the encoder output).")


def test_attention_uses_the_cache(impl):
    """Step 8 writes the cache; its contract is used here already: cache.append(k, v) stores the new keys and
    values and returns all of them so far; cache.cross holds the cross-attention keys and values."""
    config = tiny_config()
    yours, ref = make_pair(impl, config)
    torch.manual_seed(2)
    x, context = torch.randn(2, 5, 32), torch.randn(2, 6, 32)
    causal = reference.causal_mask(5, 0, torch.float32, "cpu")
    with torch.no_grad():
        full = ref(x, causal)
        cache = LayerCache(5)
        steps = [yours(x[:, :3], causal[:, :, :3, :3], cache=cache)]
        steps += [yours(x[:, t:t + 1], None, cache=cache) for t in (3, 4)]
        check_close(torch.cat(steps, dim=1), full, "self-attention run with a cache, 3 tokens then 1 then 1",
                    hint="With a cache, pass the new k, v through cache.append(k, v) and attend over what it returns.")
        cache = LayerCache(5)
        first = yours(x[:, :1], None, context, cache=cache)
        check_close(first, ref(x[:, :1], None, context), "cross-attention with a cache, first step")
        assert cache.cross is not None, "cross-attention with a cache should store (k, v) of the context in cache.cross"
        again = yours(x[:, 1:2], None, torch.zeros_like(context), cache=cache)  # a wrong context: must not be read
        check_close(again, ref(x[:, 1:2], None, context), "cross-attention with a cache, second step",
                    hint="Once cache.cross is set, reuse it: the encoder output does not change while generating.")
