"""See it think: a local web page that shows a prompt becoming a completion, step by step.

    python -m minit5.explore                         the demo model in out/demo (make it with `python train.py`)
    python -m minit5.explore --model DIR --port 0    any T5 folder or hub id; port 0 picks a free port

It prints an address; open it in a browser. The page shows the prompt's tokens, then every decoding step: the
top candidates with their probabilities (before and after temperature/top-k/top-p), the chosen token, the
cross-attention of that step over the prompt per layer and head, and for beam search the beam tree.

Everything on the page comes from one JSON endpoint, so the same traces can be scripted (docs/explore.md):

    POST /api/generate  {"prompt": "Where is Ganymede?", "num_beams": 4}   -> the trace (minit5/trace.py)
    GET  /api/info                                                         -> the model, the defaults, the limits

This file is the server: it checks each request, runs one trace at a time and answers in JSON. What a trace
holds and how it is recorded (model.generate's `watch` hook, the cross-attention, the beam tree) is
minit5/trace.py, which reads without any HTTP. The server is Python's standard library; the page (HTML,
JavaScript, CSS) ships in minit5/explore_static/ and fetches nothing from the internet. Installed with pip, the
same command is minit5-explore.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .generate import LONG_PROMPT
from .loading import DEFAULT_MODEL, LoadError, load_for_inference
from .trace import trace

STATIC = Path(__file__).with_name("explore_static")  # index.html, app.js, style.css
PACKAGE = Path(__file__).resolve().parent  # minit5/: its code is shown by /source
REPOSITORY = PACKAGE.parent  # the guide (docs/) is shown by /source when the package runs from a clone

# What one request may ask for. The bounds keep one request to about a second on the demo model and the
# response small; they are reported by /api/info so the page can show them.
LIMITS = dict(body_bytes=64 * 1024, prompt_tokens=1024, max_new_tokens=256, num_beams=8,
              temperature=(0.01, 100.0), length_penalty=(-10.0, 10.0), top=50)
DEFAULTS = dict(max_new_tokens=32, num_beams=1, do_sample=False, temperature=1.0, top_k=0, top_p=1.0, seed=0,
                length_penalty=1.0, early_stopping=False, top=10)
QUEUE = 4  # generations running or waiting at once (one runs at a time); more get 429 "busy"
DRAIN_BYTES = 16 * 1024 * 1024  # an oversized body up to this size is read and dropped, so the client sees the 413


class RequestError(ValueError):
    """A request the server refuses: an HTTP status (4xx) and one sentence saying why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------------------------------
# Checking a request's settings
# --------------------------------------------------------------------------------------------------
def _integer(body, key, low, high):
    value = body.get(key, DEFAULTS[key])
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(400, f"{key} must be an integer, got {json.dumps(value)}")
    if not low <= value <= high:
        raise RequestError(400, f"{key} must be between {low} and {high}, got {value}")
    return value


def _number(body, key, low, high, low_open=False):
    value = body.get(key, DEFAULTS[key])
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RequestError(400, f"{key} must be a number, got {json.dumps(value)}")
    if not (low < value if low_open else low <= value) or value > high:
        interval = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise RequestError(400, f"{key} must be in {interval}, got {value}")
    return float(value)


def _flag(body, key):
    value = body.get(key, DEFAULTS[key])
    if not isinstance(value, bool):
        raise RequestError(400, f"{key} must be true or false, got {json.dumps(value)}")
    return value


def parse_request(body, vocab_size: int) -> tuple[str, dict]:
    """(prompt, settings) from a decoded JSON request, or RequestError naming the first bad field. The settings
    are model.generate's keyword arguments (plus seed, and top = how many candidates to show per step)."""
    if not isinstance(body, dict):
        raise RequestError(400, f"the request must be a JSON object like {{\"prompt\": \"...\"}}, "
                                f"got a JSON {type(body).__name__}")
    unknown = sorted(set(body) - {"prompt", *DEFAULTS})
    if unknown:
        raise RequestError(400, f"unknown field {unknown[0]!r}; the fields are prompt, {', '.join(DEFAULTS)}")
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise RequestError(400, "prompt must be a string (the text to complete)")
    if not prompt.strip():
        raise RequestError(400, "the prompt is empty; write something for the model to complete")
    settings = dict(
        max_new_tokens=_integer(body, "max_new_tokens", 1, LIMITS["max_new_tokens"]),
        num_beams=_integer(body, "num_beams", 1, LIMITS["num_beams"]),
        do_sample=_flag(body, "do_sample"),
        temperature=_number(body, "temperature", *LIMITS["temperature"]),
        top_k=_integer(body, "top_k", 0, vocab_size),
        top_p=_number(body, "top_p", 0.0, 1.0, low_open=True),
        seed=_integer(body, "seed", 0, 2**63 - 1),
        length_penalty=_number(body, "length_penalty", *LIMITS["length_penalty"]),
        early_stopping=_flag(body, "early_stopping"),
        top=_integer(body, "top", 1, LIMITS["top"]),
    )
    if settings["do_sample"] and settings["num_beams"] > 1:
        raise RequestError(400, "sampling with beams is not supported (as in model.generate): set do_sample to "
                                "false or num_beams to 1")
    return prompt, settings


# --------------------------------------------------------------------------------------------------
# The model the server traces
# --------------------------------------------------------------------------------------------------
class Explorer:
    """A model, its tokenizer, and the traces of its generations (minit5/trace.py). One generation runs at a time
    (the lock): the attention hooks and the fast path's weight layout belong to the whole model."""

    def __init__(self, model, tokenizer, name: str):
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        self.lock = threading.Lock()

    def info(self) -> dict:
        c = self.model.config
        return dict(model=self.name, parameters=self.model.num_parameters(),
                    config=dict(d_model=c.d_model, num_layers=c.num_layers, num_decoder_layers=c.num_decoder_layers,
                                num_heads=c.num_heads, vocab_size=c.vocab_size),
                    tokenizer=repr(self.tokenizer), window=LONG_PROMPT, defaults=DEFAULTS, limits=LIMITS)

    def check(self, prompt: str, settings: dict) -> None:
        """RequestError (413) if the prompt is longer than the page takes."""
        tokens = len(self.tokenizer.encode(prompt))
        if tokens > LIMITS["prompt_tokens"]:
            raise RequestError(413, f"the prompt has {tokens:,} tokens; this page takes up to "
                                    f"{LIMITS['prompt_tokens']:,}")

    def trace(self, prompt: str, settings: dict, stop=None) -> dict:
        """minit5/trace.py trace, one at a time; see docs/explore.md for the fields."""
        self.check(prompt, settings)
        with self.lock:
            return trace(self.model, self.tokenizer, prompt, settings, name=self.name, stop=stop)


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------
SOURCE_PATH = re.compile(r"(minit5/[\w]+\.py|docs/(?:[\w-]+/)?[\w-]+\.md)")
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}


def source_page(path: str, find: str) -> str | None:
    """An HTML view of one file of the package (minit5/*.py) or of the guide (docs/**.md), with the first line
    that contains `find` marked id="found"; None if the file is not there (the guide ships with a clone only)."""
    if not SOURCE_PATH.fullmatch(path):
        return None
    file = (PACKAGE / path.removeprefix("minit5/")) if path.startswith("minit5/") else REPOSITORY / path
    if not file.is_file():
        return None
    lines = file.read_text(encoding="utf-8").splitlines()
    found = next((i for i, line in enumerate(lines) if find and find in line), None)
    rows = []
    for i, line in enumerate(lines):
        mark = ' id="found" class="found"' if i == found else ""
        rows.append(f'<span{mark}><i>{i + 1:>4}</i> {html.escape(line)}</span>')
    return (f'<!doctype html><meta charset="utf-8"><title>{html.escape(path)}</title>'
            f'<link rel="stylesheet" href="/static/style.css"><body class="source"><h1>{html.escape(path)}</h1>'
            f'<pre>' + "\n".join(rows) + "</pre></body>")


class Handler(BaseHTTPRequestHandler):
    server_version = "minit5-explore"
    timeout = 60  # seconds a connection may stay silent; a stalled client does not hold a thread forever

    # --- responses --------------------------------------------------------------------------------
    def send_body(self, status: int, body: bytes, content_type: str, extra: dict | None = None):
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client left; nothing to do

    def send_json(self, status: int, obj, extra: dict | None = None):
        try:  # NaN and Infinity are not JSON: browsers refuse them
            body = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except ValueError:
            status, body = 500, json.dumps(dict(error="the trace holds NaN or infinite numbers (did the model's "
                                                      "outputs overflow?)", status=500)).encode("utf-8")
        self.send_body(status, body, "application/json; charset=utf-8", extra)

    def send_error_json(self, status: int, message: str, extra: dict | None = None):
        self.send_json(status, dict(error=message, status=status), extra)

    def log_message(self, format, *args):
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    # --- GET: the page, its files, the model's info, the code and the guide ---------------------
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        if path in ("/", "/index.html"):
            path = "/static/index.html"
        if path == "/api/info":
            return self.send_json(200, self.server.explorer.info())
        if path.startswith("/static/"):
            name = path.removeprefix("/static/")
            file = STATIC / name
            if re.fullmatch(r"[\w-]+\.\w+", name) and file.is_file():
                return self.send_body(200, file.read_bytes(), CONTENT_TYPES.get(file.suffix, "text/plain"))
        if path.startswith("/source/"):
            find = urllib.parse.parse_qs(url.query).get("find", [""])[0]
            page = source_page(path.removeprefix("/source/"), find)
            if page is not None:
                return self.send_body(200, page.encode("utf-8"), "text/html; charset=utf-8")
            return self.send_error_json(404, f"{path.removeprefix('/source/')} is not here: /source shows "
                                             "minit5/*.py, and docs/*.md when run from a clone of the repository")
        if path == "/api/generate":
            return self.send_error_json(405, "POST a JSON object to /api/generate, e.g. {\"prompt\": \"Where is "
                                             "Ganymede?\"}", {"Allow": "POST"})
        self.send_error_json(404, f"nothing at {path}; the page is at /, the API at /api/generate and /api/info")

    do_HEAD = do_GET

    # --- POST /api/generate ---------------------------------------------------------------------
    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        if path != "/api/generate":
            self.send_error_json(404, f"nothing to POST to at {path}; use /api/generate")
            return
        started = time.perf_counter()
        try:
            body = self.read_json()
            prompt, settings = parse_request(body, self.server.explorer.model.config.vocab_size)
        except RequestError as e:
            return self.send_error_json(e.status, str(e))
        if not self.server.slots.acquire(blocking=False):
            return self.send_error_json(429, f"busy: {QUEUE} generations are already running or waiting; try "
                                             "again in a moment", {"Retry-After": "1"})
        try:
            result = self.server.explorer.trace(prompt, settings)
        except RequestError as e:
            return self.send_error_json(e.status, str(e))
        except Exception as e:  # a bug, not the client's fault: say so, and keep serving
            return self.send_error_json(500, f"generation failed: {type(e).__name__}: {e}")
        finally:
            self.server.slots.release()
        self.send_json(200, result)
        if self.server.verbose:
            sys.stderr.write(f"generate {len(result['steps'])} steps in {time.perf_counter() - started:.2f} s: "
                             f"{result['completion']['text']!r}\n")

    def read_json(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise RequestError(411, "send the request with a Content-Length header (chunked bodies are not read)")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            raise RequestError(411, "the request needs a Content-Length header with the size of its JSON body")
        if length < 0:
            self.close_connection = True
            raise RequestError(400, f"Content-Length must not be negative, got {length}")
        if length > LIMITS["body_bytes"]:
            self.close_connection = True
            remaining = length if length <= DRAIN_BYTES else 0  # read it away, so the client reads the answer
            while remaining > 0:
                chunk = self.rfile.read(min(1 << 16, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
            raise RequestError(413, f"the request body has {length:,} bytes; the limit is "
                                    f"{LIMITS['body_bytes']:,} (prompts take up to {LIMITS['prompt_tokens']:,} tokens)")
        raw = self.rfile.read(length)
        try:
            return json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise RequestError(400, "the request body is not UTF-8 text") from None
        except json.JSONDecodeError as e:
            raise RequestError(400, f"the request body is not valid JSON: {e.msg} at line {e.lineno} column "
                                    f"{e.colno}") from None

    def refuse(self):
        self.send_error_json(405, f"{self.command} is not supported here: GET the page, POST to /api/generate",
                             {"Allow": "GET, HEAD, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = refuse


class ExploreServer(ThreadingHTTPServer):
    daemon_threads = True  # a connection still open does not keep the process alive at Ctrl-C

    def __init__(self, explorer: Explorer, host: str = "127.0.0.1", port: int = 8000, verbose: bool = False):
        super().__init__((host, port), Handler)
        self.explorer, self.verbose = explorer, verbose
        self.slots = threading.BoundedSemaphore(QUEUE)  # generations running or waiting for the explorer's lock

    @property
    def busy(self) -> int:
        """How many generations run or wait now (for tests and logs: the semaphore's count of slots taken)."""
        return QUEUE - self.slots._value

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"


# --------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minit5.explore", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model folder or hub id (default: {DEFAULT_MODEL})")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--quiet", action="store_true", help="do not log requests")
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error(f"--port must be between 0 and 65535, got {args.port}")
    try:
        model, tokenizer = load_for_inference(args.model)
    except LoadError as e:
        raise SystemExit(f"error: {e}")
    try:
        server = ExploreServer(Explorer(model, tokenizer, args.model), args.host, args.port, verbose=not args.quiet)
    except OSError as e:
        raise SystemExit(f"error: cannot listen on {args.host}:{args.port}: {e.strerror}"
                         f"{' (try another --port, or --port 0 for a free one)' if args.port else ''}")
    print(f"minit5 explore: {args.model} at {server.url}  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
