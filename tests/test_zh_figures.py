"""The scripts behind the Chinese figures, run without a trained model: the demo's loss curve from a made-up
metrics.jsonl (docs/scripts/draw_demo_loss.py), the explore page's Chinese screenshot on a random tiny model
(docs/scripts/explore_screenshot.py --zh), and what the figure of docs/tokens.md shows
(docs/scripts/draw_chinese_prompt.py). The pictures in docs/img/ come from the trained demo model: the commands are
in the scripts' docstrings."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "docs" / "scripts"




def fake_run(folder: Path) -> Path:
    """A metrics.jsonl as the trainer writes it: training rows every 10 steps, held-out rows every 50, steps 40-50
    logged twice (a resume redid them: the later rows win), and a last line still being written."""
    rows = [{"step": s, "loss": 5.0 / s, "lr": 1e-3} for s in range(10, 60, 10)]
    rows += [{"step": 50, "eval_loss": 0.5, "exact_match": 10.0}]
    rows += [{"step": s, "loss": 4.0 / s, "lr": 1e-3} for s in (40, 50)]  # after the resume
    rows += [{"step": 50, "eval_loss": 0.4, "exact_match": 12.0}, {"step": 60, "loss": 0.05}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 70, "lo',
                                          encoding="utf-8")
    return folder


def test_demo_loss_curves_count_each_step_once(tmp_path, doc_script):
    loss = doc_script("draw_demo_loss")
    rows = loss.read_rows(fake_run(tmp_path) / "metrics.jsonl")
    train, held_out = loss.curves(rows)
    assert train == [(10, 0.5), (20, 0.25), (30, 5.0 / 30), (40, 0.1), (50, 0.08), (60, 0.05)]
    assert held_out == [(50, 0.4)]


def test_demo_loss_in_both_languages(tmp_path, doc_script):
    loss = doc_script("draw_demo_loss")
    rows = loss.read_rows(fake_run(tmp_path) / "metrics.jsonl")
    labels = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no CJK font on the machine: matplotlib warns about the glyphs it lacks
        for zh in (False, True):
            fig = loss.draw(rows, zh=zh)
            ax = fig.axes[0]
            labels[zh] = [ax.get_xlabel(), ax.get_ylabel(), *(t.get_text() for t in ax.get_legend().get_texts())]
            assert len(ax.lines) == 2 and ax.get_yscale() == "log"
            if not zh:
                fig.savefig(tmp_path / "loss.png", dpi=120)
    assert labels[False] == ["step", "cross-entropy per target token", "training loss", "held-out loss"]
    assert labels[True] == ["步数", "每个目标词元的交叉熵", "训练损失", "留出集损失"]
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_loss_without_a_run_says_so(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPTS / "draw_demo_loss.py"), "--run", str(tmp_path / "none"),
                             "--out", str(tmp_path / "x.png")], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "no metrics at" in result.stderr and "python train.py" in result.stderr


def test_the_chinese_prompt_figure_shows_the_real_tokens(doc_script):
    chars, per_char, eos, zh_ids, en_ids, sp = doc_script("draw_chinese_prompt").tokens()
    assert "".join(chars) == "伽尼米德在我们的太阳系中的位置"
    assert per_char[0] == [231, 191, 192] and all(len(ids) == 3 for ids in per_char)  # 伽 = E4 BC BD, id = byte + 3
    assert eos == 1 and zh_ids == [3, 2, 1] and len(en_ids) == 12
    assert [sp.piece(i) for i in zh_ids] == ["▁", "<unk>", "</s>"]


def test_the_explore_screenshot_in_chinese(tmp_path, chromium):  # chromium: the browser, or a failure (conftest)
    out = tmp_path / "explore.png"
    result = subprocess.run([sys.executable, str(SCRIPTS / "explore_screenshot.py"), "--random", "--zh",
                             "--num-beams", "1", "--max-new-tokens", "3", "--size", "800,600", "--out", str(out)],
                            capture_output=True, text=True, timeout=240, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "'伽尼米德在哪里？'" in result.stdout  # --zh asks the Chinese question
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 10_000
