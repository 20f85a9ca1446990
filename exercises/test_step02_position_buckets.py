"""Step 2: relative position buckets and the bias table. Compared with minit5 and transformers.

(PYTEST_DONT_REWRITE: a failed check shows its own message, not pytest's account of the expression.)"""

import torch
from transformers.models.t5.modeling_t5 import T5Attention

from minit5.model import RelativePositionBias as Reference
from minit5.model import relative_position_bucket as reference_bucket

from ._support import check_close, tiny_config

STEP = "step02_position_buckets"
SETTINGS = [(True, 32, 128), (False, 32, 128), (True, 16, 20), (False, 16, 20)]  # (bidirectional, num_buckets, max_distance)


def describe(bidirectional):
    return "encoder (bidirectional)" if bidirectional else "decoder (causal)"


def test_buckets_match_minit5_and_transformers(impl):
    rel = torch.arange(-300, 301)  # key position - query position
    for bidirectional, num_buckets, max_distance in SETTINGS:
        expected = reference_bucket(rel, bidirectional, num_buckets, max_distance)
        hf = T5Attention._relative_position_bucket(rel, bidirectional, num_buckets, max_distance)
        assert torch.equal(hf, expected), "minit5 and transformers disagree (the reference is broken)"
        got = impl.relative_position_bucket(rel, bidirectional, num_buckets, max_distance)
        where = f"relative_position_bucket(..., bidirectional={bidirectional}, {num_buckets}, {max_distance})"
        assert isinstance(got, torch.Tensor) and got.shape == rel.shape, \
            f"{where} should return a tensor of bucket ids shaped like its input {tuple(rel.shape)}"
        if torch.equal(got.long(), expected):
            continue
        wrong = (got.long() != expected).nonzero()[:, 0]
        examples = ", ".join(f"{rel[i].item()} → {got[i].item()} (expected {expected[i].item()})" for i in wrong[:6])
        lines = [f"{where}: {len(wrong)} of {len(rel)} relative positions get the wrong bucket, e.g. {examples}."]
        if torch.equal(got.long(), reference_bucket(-rel, bidirectional, num_buckets, max_distance)):
            lines.append("Your buckets are mirrored: the relative position is key position - query position "
                         "(positive = the key comes after the query), not query - key.")
        elif got.max() >= num_buckets or got.min() < 0:
            lines.append(f"Some buckets fall outside 0..{num_buckets - 1}: clamp the log-spaced bucket to "
                         f"num_buckets - 1 (after halving num_buckets for the encoder).")
        elif bidirectional and (rel[wrong] == 0).any():
            lines.append("Distance 0 (the query itself) must be bucket 0: only keys strictly after the query "
                         "(relative_position > 0) use the upper half.")
        elif (rel[wrong].abs() >= num_buckets // 4).all():
            lines.append("Close distances are right, far ones are not: check the log-spaced formula: max_exact + "
                         "log(n / max_exact) / log(max_distance / max_exact) * (num_buckets - max_exact), truncated "
                         "toward zero with .long() (not rounded), and for the encoder use the halved num_buckets.")
        lines.append(f"The table in docs/architecture.md section 4 lists the expected buckets ({describe(bidirectional)}).")
        raise AssertionError("\n".join(lines))


def test_bias_matches_minit5(impl):
    config = tiny_config()
    for bidirectional in (True, False):
        layout = "The result is (1, H, Tq, Tk): table(buckets) is (Tq, Tk, H), so permute(2, 0, 1) and unsqueeze(0)."
        torch.manual_seed(0)
        ref = Reference(config, bidirectional)
        yours = impl.RelativePositionBias(config, bidirectional)
        assert tuple(yours.table.weight.shape) == (32, 4), \
            f"RelativePositionBias.table should be nn.Embedding(num_buckets, num_heads) = (32, 4), got {tuple(yours.table.weight.shape)}"
        with torch.no_grad():
            yours.table.weight.copy_(ref.table.weight)
            expected, got = ref(5, 7), yours(5, 7)
            if isinstance(got, torch.Tensor) and tuple(got.shape) == (1, 4, 7, 5):
                layout = ("Your bias is laid out (1, H, Tk, Tq): queries index the rows. " + layout)
            check_close(got, expected, f"RelativePositionBias(5 queries, 7 keys), {describe(bidirectional)}",
                        mistakes=[("the bias is laid out (1, H, Tk, Tq): queries index the rows.",
                                   ref(7, 5).transpose(-1, -2)),
                                  ("the relative position is query - key: it is key position - query position.",
                                   ref.table(reference_bucket(torch.arange(5)[:, None] - torch.arange(7)[None, :],
                                                              bidirectional, 32, 128)).permute(2, 0, 1)[None])],
                        shape_hint=layout)
            # While generating, the one new query sits at position query_offset.
            full = ref(10, 10)
            check_close(yours(1, 10, query_offset=9), full[:, :, 9:], "RelativePositionBias(1, 10, query_offset=9)",
                        mistakes=[("query_offset is ignored: the new query is at position 9, not 0.", full[:, :, :1])],
                        shape_hint=layout,
                        hint="With a KV cache only the newest query is computed; it sits at position query_offset, "
                             "the keys at 0 .. key_len - 1.")


def test_bias_uses_the_configs_bucket_settings(impl):
    config = tiny_config(relative_attention_num_buckets=48, relative_attention_max_distance=40)
    for bidirectional in (True, False):
        torch.manual_seed(0)
        ref = Reference(config, bidirectional)
        yours = impl.RelativePositionBias(config, bidirectional)
        assert tuple(yours.table.weight.shape) == (48, 4), (
            f"with config.relative_attention_num_buckets = 48 the table should be nn.Embedding(48, num_heads) = "
            f"(48, 4), got {tuple(yours.table.weight.shape)}")
        with torch.no_grad():
            yours.table.weight.copy_(ref.table.weight)
            rel = torch.arange(60)[None, :] - torch.arange(60)[:, None]  # key - query, (Tq, Tk)

            def bias_with(num_buckets, max_distance):
                return ref.table(reference_bucket(rel, bidirectional, num_buckets, max_distance)).permute(2, 0, 1)[None]
            check_close(yours(60, 60), ref(60, 60),
                        f"RelativePositionBias(60, 60) with 48 buckets and max_distance 40, {describe(bidirectional)}",
                        mistakes=[("the buckets use the defaults (32 buckets, max_distance 128), not the config's "
                                   "relative_attention_num_buckets and relative_attention_max_distance: pass them to "
                                   "relative_position_bucket.", bias_with(32, 128)),
                                  ("the buckets use the default max_distance 128, not the config's "
                                   "relative_attention_max_distance.", bias_with(48, 128)),
                                  ("the buckets use the default 32 buckets, not the config's "
                                   "relative_attention_num_buckets.", bias_with(32, 40))],
                        hint="Keep config.relative_attention_num_buckets and config.relative_attention_max_distance "
                             "in __init__ and pass both to relative_position_bucket.")
