"""A screenshot of the explore page (python -m minit5.explore) for the docs, taken by headless Chromium.

    python docs/scripts/explore_screenshot.py                         the demo model in out/demo
    python docs/scripts/explore_screenshot.py --model DIR             any T5 folder
    python docs/scripts/explore_screenshot.py --num-beams 1 --out /tmp/greedy.png

It starts the page's server on a free local port, opens the page with the prompt and settings in its address
(the page fills its form and submits it, as tests/test_explore.py does), waits for the answer and writes the
picture: docs/img/explore.png unless --out says otherwise. Needs Chromium (Debian: apt-get install chromium).
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
from common import ROOT, add_model_arguments, load  # noqa: E402

from minit5.explore import ExploreServer, Explorer  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p, max_new_tokens=16)
    p.add_argument("--num-beams", type=int, default=3, help="beam search shows all four panels (default 3)")
    p.add_argument("--step", type=int, default=2, help="the step shown in detail (default 2)")
    p.add_argument("--size", default="1280,1500", help="window width,height in pixels (default 1280,1500)")
    p.add_argument("--label", help="the model's name on the page (default: --model)")
    p.add_argument("--out", default=str(ROOT / "docs/img/explore.png"))
    args = p.parse_args()
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
    url = server.url + "?" + urllib.parse.urlencode(query)
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                 "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={args.size}",
                                 "--virtual-time-budget=30000", f"--screenshot={out}", url],
                                capture_output=True, text=True, timeout=180)
    server.shutdown()
    if result.returncode != 0 or not out.exists():
        sys.exit(f"chromium failed ({result.returncode}): {result.stderr[-1500:]}")
    print(f"{description}, prompt {args.prompt!r}: wrote {out}")


if __name__ == "__main__":
    main()
