"""A screenshot of the explore page (python -m minit5.explore) for the docs, taken by headless Chromium.

    python docs/scripts/explore_screenshot.py                         the demo model in out/demo
    python docs/scripts/explore_screenshot.py --model DIR             any T5 folder
    python docs/scripts/explore_screenshot.py --num-beams 1 --out /tmp/greedy.png
    python docs/scripts/explore_screenshot.py --zh                    the page in Chinese, asked 伽尼米德在哪里？

It starts the page's server on a free local port, opens the page with the prompt and settings in its address
(the page fills its form and submits it, as tests/test_explore.py does), waits for the answer and writes the
picture: docs/img/explore.png unless --out says otherwise. Needs Chromium (Debian: apt-get install chromium).
With --zh the browser's language is Chinese and the address asks for it (lang=zh), the default prompt is the
Chinese question, and the picture is docs/img/zh/explore.png, shown by docs/zh/ (the Chinese characters need a
CJK font: Debian's fonts-wqy-microhei or fonts-noto-cjk).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, add_model_arguments, figure_path, load  # noqa: E402

from minit5.explore import ExploreServer, Explorer  # noqa: E402

ZH_PROMPT = "伽尼米德在哪里？"  # the Chinese page asks the demo's question in Chinese (it answers 木星)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p, max_new_tokens=16)
    p.add_argument("--num-beams", type=int, default=3, help="beam search shows all four panels (default 3)")
    p.add_argument("--step", type=int, default=2, help="the step shown in detail (default 2)")
    p.add_argument("--size", default="1280,1500", help="window width,height in pixels (default 1280,1500)")
    p.add_argument("--label", help="the model's name on the page (default: --model)")
    p.add_argument("--zh", action="store_true", help="the page in Chinese (docs/img/zh/explore.png)")
    p.add_argument("--out", help="where to write (default docs/img/explore.png; with --zh docs/img/zh/explore.png)")
    args = p.parse_args()
    if args.zh and args.prompt == p.get_default("prompt"):
        args.prompt = ZH_PROMPT
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("this script needs Chromium: apt-get install chromium")
    model, tokenizer, description = load(args.model, args.random)
    name = args.label or ("a random tiny model" if args.random else args.model)
    server = ExploreServer(Explorer(model, tokenizer, name), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    query = dict(prompt=args.prompt, max_new_tokens=args.max_new_tokens, step=args.step)
    if args.num_beams > 1:
        query["num_beams"] = args.num_beams
    query["lang"] = "zh" if args.zh else "en"
    url = server.url + "?" + urllib.parse.urlencode(query)
    out = Path(args.out or figure_path("explore.png", args.zh)).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                 "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={args.size}",
                                 f"--accept-lang={'zh-CN,zh' if args.zh else 'en-US,en'}",
                                 "--virtual-time-budget=30000", f"--screenshot={out}", url],
                                capture_output=True, text=True, timeout=180)
    server.shutdown()
    if result.returncode != 0 or not out.exists():
        sys.exit(f"chromium failed ({result.returncode}): {result.stderr[-1500:]}")
    print(f"{description}, prompt {args.prompt!r}: wrote {out}")


if __name__ == "__main__":
    main()
