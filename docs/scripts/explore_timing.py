"""How long the explore page's JSON endpoint takes to answer (python -m minit5.explore, POST /api/generate).

    python docs/scripts/explore_timing.py                      the demo model in out/demo
    python docs/scripts/explore_timing.py --model DIR --repeat 9

It starts the page's server on a free local port in this process, asks it once to warm up, then --repeat times
per setting (greedy, sampling, beam search), and prints a Markdown table of the median times: measured by the
client (request to last byte, JSON included) and by the server (the trace's own "seconds"). Wall-clock times
depend on the machine and on what else runs on it: say where they were measured.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_model_arguments, load  # noqa: E402

from minit5.explore import ExploreServer, Explorer  # noqa: E402

SETTINGS = [  # (name, request fields besides the prompt)
    ("greedy", {}),
    ("sampling (temperature 0.8, top-p 0.9)", dict(do_sample=True, temperature=0.8, top_p=0.9)),
    ("beam search, 4 beams", dict(num_beams=4)),
]


def post(server, body: dict) -> tuple[float, dict, int]:
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=120)
    started = time.perf_counter()
    connection.request("POST", "/api/generate", body=json.dumps(body), headers={"Content-Type": "application/json"})
    data = connection.getresponse().read()
    seconds = time.perf_counter() - started
    connection.close()
    return seconds, json.loads(data), len(data)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p, max_new_tokens=32)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    model, tokenizer, description = load(args.model, args.random)
    server = ExploreServer(Explorer(model, tokenizer, args.model), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"{description}, prompt {args.prompt!r}, max_new_tokens {args.max_new_tokens}, "
          f"{torch.get_num_threads()} torch threads, median of {args.repeat}:\n")
    print("| settings | steps | answer | response (client) | trace (server) | JSON size |")
    print("|---|---|---|---|---|---|")
    for name, fields in SETTINGS:
        body = dict(prompt=args.prompt, max_new_tokens=args.max_new_tokens, **fields)
        post(server, body)  # warm-up: the first call also arranges the fast path's weights
        runs = [post(server, body) for _ in range(args.repeat)]
        client = statistics.median(r[0] for r in runs)
        traced = statistics.median(r[1]["seconds"] for r in runs)
        answer = runs[0][1]
        print(f"| {name} | {len(answer['steps'])} | {answer['completion']['text']!r} | {client:.2f} s | "
              f"{traced:.2f} s | {runs[0][2] / 1024:.0f} KiB |")
    server.shutdown()


if __name__ == "__main__":
    main()
