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
same command is minit5-explore. It serves only its own page: other hosts, origins and sites are refused, and each
request and connection is bounded (docs/explore.md, "Safety", says what that does and does not protect against).
"""

from __future__ import annotations

import argparse
import html
import io
import ipaddress
import json
import math
import re
import socket
import sys
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .generate import LONG_PROMPT
from .loading import DEFAULT_MODEL, LoadError, load_for_inference
from .trace import Stopped, trace

STATIC = Path(__file__).with_name("explore_static")  # index.html, app.js, style.css
PACKAGE = Path(__file__).resolve().parent  # minit5/: its code is shown by /source
REPOSITORY = PACKAGE.parent  # the guide (docs/) is shown by /source when the package runs from a clone

# What one request may ask for. The bounds keep one request to about a second on the demo model and the
# response small; they are reported by /api/info so the page can show them. trace_bytes bounds the JSON of one
# trace (trace_size estimates it before generating): the cross-attention alone is steps x prompt tokens x decoder
# blocks x heads numbers.
LIMITS = dict(body_bytes=64 * 1024, prompt_tokens=1024, max_new_tokens=256, num_beams=8,
              temperature=(0.01, 100.0), length_penalty=(-10.0, 10.0), top=50, trace_bytes=8 * 2**20)
DEFAULTS = dict(max_new_tokens=32, num_beams=1, do_sample=False, temperature=1.0, top_k=0, top_p=1.0, seed=0,
                length_penalty=1.0, early_stopping=False, top=10)
QUEUE = 4  # generations running or waiting at once (one runs at a time); more get 429 "busy"
DRAIN_BYTES = 16 * 1024 * 1024  # an oversized body up to this size is read and dropped, so the client sees the 413

# What one connection may take (docs/explore.md, "Safety"). A connection is a thread: at most MAX_CONNECTIONS
# are open at once, more get 503 at once. A request must arrive whole (request line, headers, body) within
# REQUEST_SECONDS, however slowly its bytes trickle in, and an answer must be taken within as long.
MAX_CONNECTIONS = 32
REQUEST_SECONDS = 30.0
MAX_URL = 16 * 1024  # bytes of the address (the page puts its form in it, the prompt included)
HEADERS = {  # on every answer: the page loads only its own files, no page may frame it or learn where it was
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin", "Cache-Control": "no-store",
}


class RequestError(ValueError):
    """A request the server refuses: an HTTP status (4xx) and one sentence saying why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------------------------------
# Checking a request's settings
# --------------------------------------------------------------------------------------------------
def _shown(value) -> str:
    """A client's value as an error message quotes it: JSON, cut to 40 characters."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _integer(body, key, low, high):
    value = body.get(key, DEFAULTS[key])
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(400, f"{key} must be an integer, got {_shown(value)}")
    if not low <= value <= high:
        raise RequestError(400, f"{key} must be between {low} and {high}, got {_shown(value)}")
    return value


def _number(body, key, low, high, low_open=False):
    value = body.get(key, DEFAULTS[key])
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RequestError(400, f"{key} must be a number, got {_shown(value)}")
    if not (low < value if low_open else low <= value) or value > high:
        interval = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise RequestError(400, f"{key} must be in {interval}, got {value}")
    return float(value)


def _flag(body, key):
    value = body.get(key, DEFAULTS[key])
    if not isinstance(value, bool):
        raise RequestError(400, f"{key} must be true or false, got {_shown(value)}")
    return value


def parse_request(body, vocab_size: int) -> tuple[str, dict]:
    """(prompt, settings) from a decoded JSON request, or RequestError naming the first bad field. The settings
    are model.generate's keyword arguments (plus seed, and top = how many candidates to show per step)."""
    if not isinstance(body, dict):
        raise RequestError(400, f"the request must be a JSON object like {{\"prompt\": \"...\"}}, "
                                f"got a JSON {type(body).__name__}")
    unknown = sorted(set(body) - {"prompt", *DEFAULTS})
    if unknown:
        raise RequestError(400, f"unknown field {unknown[0][:40]!r}; the fields are prompt, {', '.join(DEFAULTS)}")
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise RequestError(400, "prompt must be a string (the text to complete)")
    if not prompt.strip():
        raise RequestError(400, "the prompt is empty; write something for the model to complete")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as e:  # JSON may spell half of a UTF-16 pair ("\\ud800"): that is not text
        raise RequestError(400, f"the prompt holds a lone surrogate ({prompt[e.start]!r} at character {e.start}), "
                                "which is not text; send the prompt as UTF-8") from None
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
def trace_size(settings: dict, prompt_tokens: int, config) -> dict[str, int]:
    """Bytes of JSON a trace can take at most, by part (generous per item, so that it bounds the real size):
    per step the cross-attention over the prompt (decoder blocks x heads x prompt tokens numbers), the candidate
    rows, and in beam search the tree's 2 x beams nodes; the prompt's and the answer's tokens once."""
    steps, beams = settings["max_new_tokens"], settings["num_beams"]
    return dict(attention=steps * config.num_decoder_layers * config.num_heads * (prompt_tokens * 8 + 2),
                candidates=steps * (settings["top"] * (2 if settings["do_sample"] else 1) + 1) * 200,
                beams=steps * 2 * beams * 220 if beams > 1 else 0,
                tokens=(prompt_tokens + 2 * steps) * 120 + 2000)


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
        """RequestError (413) if the prompt is longer than the page takes, or its trace could be too large (saying
        which setting to lower). Cheap: it runs before the request waits for the model."""
        tokens = len(self.tokenizer.encode(prompt))
        if tokens > LIMITS["prompt_tokens"]:
            raise RequestError(413, f"the prompt has {tokens:,} tokens; this page takes up to "
                                    f"{LIMITS['prompt_tokens']:,}")
        size = trace_size(settings, tokens, self.model.config)
        if sum(size.values()) > LIMITS["trace_bytes"]:
            c, s = self.model.config, settings
            part = max(("attention", "candidates", "beams"), key=size.get)
            what, lower = dict(
                attention=(f"the cross-attention ({s['max_new_tokens']} steps x {tokens:,} prompt tokens x "
                           f"{c.num_decoder_layers} decoder blocks x {c.num_heads} heads)",
                           "max_new_tokens or shorten the prompt"),
                candidates=(f"the candidates ({s['max_new_tokens']} steps x top {s['top']})", "top or max_new_tokens"),
                beams=(f"the beam tree ({s['max_new_tokens']} steps x 2 x {s['num_beams']} beams)",
                       "num_beams or max_new_tokens"))[part]
            raise RequestError(413, f"this trace could take {sum(size.values()) / 2**20:.0f} MiB of JSON, over the "
                                    f"{LIMITS['trace_bytes'] // 2**20} MiB a request may; most of it is {what}: "
                                    f"lower {lower}")

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


class _DeadlineReader(io.RawIOBase):
    """The connection's bytes, each read given only the time left until the handler's deadline: a client that
    sends a byte now and then cannot stretch one request past REQUEST_SECONDS."""

    def __init__(self, handler):
        self.handler = handler

    def readable(self):
        return True

    def readinto(self, buffer):
        h = self.handler
        left = h.deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError("the request did not arrive in time")
            h.connection.settimeout(left)
            n = h.connection.recv_into(buffer)
        except TimeoutError:
            h.timed_out = True
            raise
        h.received += n
        return n


class Handler(BaseHTTPRequestHandler):
    server_version = "minit5-explore"  # the Server header, without Python's version

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        self.rfile.close()  # the plain reader: requests are read against a deadline instead
        self.rfile = io.BufferedReader(_DeadlineReader(self))

    def handle_one_request(self):
        self.deadline, self.received, self.timed_out = time.monotonic() + self.server.request_seconds, 0, False
        self.requestline, self.command = "", None  # until a request line arrives (the log and HEAD read them)
        super().handle_one_request()  # on a timeout it closes the connection; say why if a request had begun
        if self.timed_out and self.received:
            self.request_version = "HTTP/1.1"  # a request line may not have arrived: answer with a status line
            self.send_error_json(408, f"the request did not arrive whole within {self.server.request_seconds:g} s",
                                 {"Connection": "close"})

    # --- who may ask: checked for every request, before it is dispatched ------------------------
    def parse_request(self) -> bool:
        if not super().parse_request():  # a malformed request line or headers: send_error below answered
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 requests are not served")
            return False
        if len(self.path) > MAX_URL:
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return False
        refusal = self.server.refusal(self.headers)
        if refusal:
            self.close_connection = True
            self.send_error_json(403, refusal)
            return False
        return True

    def send_error(self, code, message=None, explain=None):
        """http.server calls this for what it cannot parse (a malformed request line, a URL or a header too long,
        too many headers, an unknown method) and answers with an HTML page: answer in JSON, as everything else."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        if self.request_version == "HTTP/0.9" or not self.requestline:
            self.request_version = "HTTP/1.1"  # so that the answer has a status line and headers
        code = int(code)
        sentence = {400: f"malformed request: {(message or 'Bad request')[:120]}; send METHOD /path HTTP/1.1",
                    414: f"the address is longer than {MAX_URL:,} bytes; POST long prompts to /api/generate",
                    431: f"the request's headers are too large ({message}): at most 100 headers of 64 KiB",
                    501: f"{str(self.command)[:40]} is not supported here: GET the page, POST to /api/generate",
                    505: "this server speaks HTTP/1.0 and HTTP/1.1"}.get(code, message or HTTPStatus(code).phrase)
        if code == 501:  # an unknown method is the client's mistake: 405, as for PUT or DELETE
            return self.send_error_json(405, sentence, {"Allow": "GET, HEAD, POST", "Connection": "close"})
        self.send_error_json(code, sentence, {"Connection": "close"})

    # --- responses --------------------------------------------------------------------------------
    def send_body(self, status: int, body: bytes, content_type: str, extra: dict | None = None):
        try:
            self.connection.settimeout(self.server.request_seconds)  # bounds the whole answer (sendall)
            self.send_response(status)
            for key, value in {"Content-Type": content_type, "Content-Length": str(len(body)), **HEADERS,
                               **(extra or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:  # the client left, or does not read its answer
            self.close_connection = True

    @staticmethod
    def json_bytes(obj) -> tuple[int, bytes]:
        """(status, body): the object as JSON, or a 500 if it holds NaN or infinities (browsers refuse them)."""
        try:
            return 200, json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except ValueError:
            return 500, json.dumps(dict(error="the trace holds NaN or infinite numbers (did the model's outputs "
                                              "overflow?)", status=500)).encode("utf-8")

    def send_json(self, status: int, obj, extra: dict | None = None):
        ok, body = self.json_bytes(obj)
        self.send_body(status if ok == 200 else ok, body, "application/json; charset=utf-8", extra)

    def send_error_json(self, status: int, message: str, extra: dict | None = None):
        self.send_json(status, dict(error=message, status=status), extra)

    def log_message(self, format, *args):
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def client_gone(self) -> bool:
        """Whether the client has closed its connection (a peek that does not wait): then generating is wasted."""
        try:
            self.connection.settimeout(0)
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False  # connected, nothing sent: still waiting for its answer
        except OSError:
            return True

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
            self.close_connection = True  # its body is not read
            return self.send_error_json(404, f"nothing to POST to at {path}; use /api/generate")
        started = time.perf_counter()
        explorer = self.server.explorer
        try:
            body = self.read_json()
            prompt, settings = parse_request(body, explorer.model.config.vocab_size)
            explorer.check(prompt, settings)  # the prompt's length and the trace's size, before queueing
        except RequestError as e:
            return self.send_error_json(e.status, str(e))
        if not self.server.slots.acquire(blocking=False):
            return self.send_error_json(429, f"busy: {QUEUE} generations are already running or waiting; try "
                                             "again in a moment", {"Retry-After": "1"})
        try:  # the JSON is made inside the slot too: queued requests cannot pile up traces in memory
            status, answer = self.json_bytes(explorer.trace(prompt, settings, stop=self.client_gone))
        except Stopped:
            self.close_connection = True
            return self.log_message("the client left: generation stopped after %.2f s", time.perf_counter() - started)
        except RequestError as e:
            return self.send_error_json(e.status, str(e))
        except Exception as e:  # a bug, not the client's fault: say so, and keep serving
            return self.send_error_json(500, f"generation failed: {type(e).__name__}: {e}")
        finally:
            self.server.slots.release()
        self.send_body(status, answer, "application/json; charset=utf-8")
        self.log_message("generate: %d bytes in %.2f s", len(answer), time.perf_counter() - started)

    def read_json(self):
        content_type = self.headers.get("Content-Type", "")
        if content_type.partition(";")[0].strip().lower() != "application/json":
            self.close_connection = True  # a browser sends a form or text/plain cross-site without asking first
            raise RequestError(415, f"send the body as JSON with Content-Type: application/json (got "
                                    f"{_shown(content_type) if content_type else 'no Content-Type'})")
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
        except RecursionError:
            raise RequestError(400, "the request body nests too deeply; send one JSON object of settings") from None
        except ValueError:  # Python reads integers of up to sys.get_int_max_str_digits() digits
            raise RequestError(400, f"the request body holds an integer of over {sys.get_int_max_str_digits():,} "
                                    "digits; no setting needs one") from None

    def refuse(self):
        self.send_error_json(405, f"{self.command} is not supported here: GET the page, POST to /api/generate",
                             {"Allow": "GET, HEAD, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = refuse


WILDCARDS = ("0.0.0.0", "::", "")


class ExploreServer(ThreadingHTTPServer):
    daemon_threads = True  # a connection still open does not keep the process alive at Ctrl-C

    def __init__(self, explorer: Explorer, host: str = "127.0.0.1", port: int = 8000, verbose: bool = False,
                 max_connections: int = MAX_CONNECTIONS, request_seconds: float = REQUEST_SECONDS):
        super().__init__((host, port), Handler)
        self.explorer, self.verbose, self.request_seconds = explorer, verbose, request_seconds
        self.slots = threading.BoundedSemaphore(QUEUE)  # generations running or waiting for the explorer's lock
        self.max_connections, self.connections = max_connections, threading.BoundedSemaphore(max_connections)
        # The names a request may give in its Host header (with the bound port), as Jupyter does: a page on
        # another domain that the attacker points at 127.0.0.1 (DNS rebinding) sends its own name, and is refused.
        self.port = self.server_address[1]
        name = f"[{host}]" if ":" in host else host
        self.names = {"localhost", "127.0.0.1", "[::1]", name.lower()}
        if host in WILDCARDS:  # every interface: the machine's addresses, and its host name
            self.names.add(socket.gethostname().lower())

    @property
    def busy(self) -> int:
        """How many generations run or wait now (for tests and logs: the semaphore's count of slots taken)."""
        return QUEUE - self.slots._value

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def host_allowed(self, value: str) -> bool:
        match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::(\d{1,5}))?", value or "")
        if match is None or int(match[2] or 80) != self.port:
            return False
        name = match[1].lower()
        if name in self.names:
            return True
        try:  # with --host 0.0.0.0, any address of this machine: a numeric Host is never a rebound name
            return self.server_address[0] in WILDCARDS and bool(ipaddress.ip_address(name.strip("[]")))
        except ValueError:
            return False

    def refusal(self, headers) -> str | None:
        """Why a request is refused (one sentence), or None. Only our own page may ask: the Host is one the server
        was started for; a browser's Origin, if sent, is this server; and no other site's page made the request."""
        host = headers.get("Host", "")
        if not self.host_allowed(host):
            return (f"Host {_shown(host) if host else '(none)'} is not this server, which answers at "
                    f"127.0.0.1:{self.port}, localhost:{self.port} and the --host it was started with")
        origin = headers.get("Origin")
        if origin is not None and origin.lower() != f"http://{host.lower()}":
            return f"requests from other pages ({_shown(origin)}) are refused; open http://{host}/ itself"
        if headers.get("Sec-Fetch-Site", "").lower() in ("cross-site", "same-site"):
            return f"requests made by another site are refused; type or paste http://{host}/ in the address bar"
        return None

    # --- a capped number of connections: each is a thread ---------------------------------------
    def process_request(self, request, client_address):
        if not self.connections.acquire(blocking=False):
            body = json.dumps(dict(error=f"too many connections: {self.max_connections} are open; try again in a "
                                         "moment", status=503)).encode()
            head = "".join(f"{k}: {v}\r\n" for k, v in {"Content-Type": "application/json; charset=utf-8",
                                                        "Content-Length": len(body), **HEADERS,
                                                        "Retry-After": 1, "Connection": "close"}.items())
            try:  # no thread and no waiting for this one: answer if the socket takes it at once, then close
                request.setblocking(False)
                request.send(f"HTTP/1.1 503 Service Unavailable\r\n{head}\r\n".encode() + body)
            except OSError:
                pass
            return self.shutdown_request(request)
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self.connections.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()


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
    if not is_loopback(args.host):
        print(f"warning: --host {args.host} opens the page to the network with no password: anyone who can reach "
              f"this machine can use it and its CPU", file=sys.stderr, flush=True)
    print(f"minit5 explore: {args.model} at {server.url}  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    main()
