"""The numbers behind the docs' pictures and tables are what the code does (docs/scripts/*.py, without drawing).

Each docs script that reconstructs something from minit5 (the beam-search tree, the KV cache steps, the share of
attention pairs in the last position bucket) is checked here against a direct computation, on a random tiny model.
"""


import pytest
import torch

from minit5.model import relative_position_bucket




def test_share_in_last_bucket_equals_counting_every_pair(doc_script):
    context_window = doc_script("context_window")
    for length in (100, 257):
        pos = torch.arange(length)
        relative = pos[None, :] - pos[:, None]  # (query, key)
        for bidirectional in (True, False):
            buckets = relative_position_bucket(relative, bidirectional, 32, 128)
            if bidirectional:  # the last bucket of each direction: 15 (before) and 31 (after)
                far, pairs = (buckets == 15) | (buckets == 31), length * length
            else:  # only keys at or before the query are visible
                visible = relative <= 0
                far, pairs = (buckets == 31) & visible, int(visible.sum())
            expected = int(far.sum()) / pairs
            assert abs(context_window.share_in_last_bucket(length, bidirectional) - expected) < 1e-12
    assert context_window.first_distance_of_last_bucket(True) == 91
    assert context_window.first_distance_of_last_bucket(False) == 113


def test_beam_tree_reconstructs_the_search_that_generate_runs(doc_script):
    beam_tree, common = doc_script("draw_beam_tree"), doc_script("common")
    model, tokenizer, _ = common.random_model(seed=1)
    for max_new_tokens in (3, 6):
        state, best = beam_tree.run(model, tokenizer, "Where is Ganymede?", 4, max_new_tokens)  # asserts = generate
        nodes, leaves = beam_tree.tree(state, 4, model.config.eos_token_id, max_new_tokens)
        t, parent, token, score, normalised = max(leaves, key=lambda leaf: leaf[4])
        assert beam_tree.tokens_of(nodes, parent) + [token] == best[1:]
        # each running beam's score is the sum of the log-probabilities along its path
        for key, (token, node_score, parent) in nodes.items():
            if parent is not None:
                expected = nodes[parent][1] + float(state.log_probs[parent[0]][parent[1], token])
                assert abs(node_score - expected) < 1e-4


def test_kv_cache_steps_grow_by_one_position_and_cross_attention_is_made_once(doc_script):
    kv_cache, common = doc_script("draw_kv_cache"), doc_script("common")
    model, tokenizer, _ = common.random_model()
    steps, prompt_tokens, max_len, shape, _ = kv_cache.record(model, tokenizer, "Io?", 5)
    assert [length for _, length, _ in steps] == list(range(1, len(steps) + 1))
    assert [cross for _, _, cross in steps] == [False] + [True] * (len(steps) - 1)
    assert len(prompt_tokens) == len(tokenizer.encode("Io?")) and max_len == 5
    assert tuple(shape) == (1, model.config.num_heads, 5, model.config.d_kv)


def test_chinese_figures_without_a_cjk_font_stop_with_a_sentence(monkeypatch, doc_script):
    """--zh draws Chinese labels; without a CJK font matplotlib would draw empty boxes, so the scripts stop and say
    which font to install (docs/scripts/common.py use_chinese_font)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    common = doc_script("common")
    monkeypatch.setattr(common, "CJK_FONTS", ("No Such Font SC",))
    with pytest.raises(SystemExit) as stop:
        common.use_chinese_font(plt)
    assert "need a CJK font" in str(stop.value) and "fonts-noto-cjk" in str(stop.value)
    assert plt.rcParams["font.family"] != ["DejaVu Sans", "No Such Font SC"]  # nothing changed
