"""The explore server's safety (issue 24), each point against a real server on a free port of 127.0.0.1: only its
own hosts and origins are served, a POST must be JSON, every answer carries the security headers, a trace has a
bounded size, a client that leaves stops its generation, slow connections meet a cap and a deadline, and every error
(including those http.server raises itself) is JSON. Then headless Chromium: the page works under its CSP, and a
page from another origin can neither frame it nor make it generate.

tests/test_explore.py checks what the page shows; the browser tests here need Chromium as that file's do.
"""

import http.client
import json
import socket
import threading
import time
import urllib.parse
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hf_models import save_byte_model

from minit5 import T5, Tokenizer
from minit5 import explore
from minit5.explore import LIMITS, ExploreServer, Explorer, trace_size

PROMPT = "Where is Ganymede?"


pytestmark = pytest.mark.usefixtures("one_thread")  # the model is tiny (conftest.py)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A random byte-level T5 (2+2 blocks, 4 heads): it almost never says </s>, so it runs to max_new_tokens."""
    return save_byte_model(tmp_path_factory.mktemp("safety_model"), num_layers=2)


def start(folder, **options):
    server = ExploreServer(Explorer(T5.from_pretrained(folder), Tokenizer.from_pretrained(folder), "tiny"),
                           "127.0.0.1", 0, **options)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop(server):
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def server(folder):
    server = start(folder)
    yield server
    stop(server)


@pytest.fixture
def generations(server, monkeypatch):
    """Each call of the server's model.generate, as the number of steps its watch hook saw (a list)."""
    model, calls = server.explorer.model, []
    original = model.generate

    def counted(*args, watch, **kwargs):
        calls.append(0)

        def watching(numbers):
            calls[-1] += 1
            watch(numbers)
        return original(*args, watch=watching, **kwargs)
    monkeypatch.setattr(model, "generate", counted)
    return calls


def ask(server, method, path, body=None, headers=None, host=None):
    """(status, headers, decoded JSON or text) of one request; the Host header is the server's own unless given."""
    port = server.server_address[1]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    headers = {"Host": host or f"127.0.0.1:{port}", **(headers or {})}
    if body is not None:
        body = json.dumps(body).encode() if isinstance(body, dict) else body
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
    for key, value in headers.items():
        if value is not None:
            connection.putheader(key, value)
    connection.endheaders(body)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        return response.status, response.headers, json.loads(data)
    return response.status, response.headers, data.decode("utf-8")


def raw(server, data: bytes, timeout: float = 30):
    """Send bytes as they are, read until the server closes: (status, headers, JSON body). For what http.client
    cannot send (malformed request lines, unknown methods, too many headers)."""
    with socket.create_connection(server.server_address[:2], timeout=timeout) as s:
        s.sendall(data)
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    return parse(received)


def parse(received: bytes):
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Content-Type"].startswith("application/json"), received[:300]
    return int(lines[0].split()[1]), headers, json.loads(body)


def one_sentence(answer, status):
    assert answer["status"] == status and isinstance(answer["error"], str) and len(answer["error"]) > 15, answer
    assert "\n" not in answer["error"] and "Traceback" not in answer["error"]


# ---------------------------------------------------------------- who may ask: Host, Origin, Sec-Fetch-Site
def test_only_the_hosts_it_was_started_for(server, generations):
    port = server.server_address[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        assert ask(server, "GET", "/api/info", host=host)[0] == 200, host
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1", f"10.0.0.1:{port}",
                 f"localhost.evil.example:{port}", f"127.0.0.1:{port}@evil"):
        for method, path, body in (("GET", "/", None), ("GET", "/api/info", None),
                                   ("POST", "/api/generate", {"prompt": PROMPT})):
            status, _, answer = ask(server, method, path, body, host=host)  # a rebound name, another port
            assert status == 403, (host, path, answer)
            one_sentence(answer, 403)
            assert "is not this server" in answer["error"]
    status, _, answer = raw(server, b"GET /api/info HTTP/1.0\r\n\r\n")  # no Host at all
    assert status == 403 and "Host (none)" in answer["error"]
    assert generations == []


def test_a_wildcard_server_answers_to_addresses_not_to_names(server, monkeypatch):
    """With --host 0.0.0.0 (checked here without opening the network) the page is reached by this machine's
    address or host name; a name that DNS rebinding could point here is still refused."""
    port = server.port
    assert not server.host_allowed(f"192.168.1.5:{port}")
    monkeypatch.setattr(server, "server_address", ("0.0.0.0", port))
    assert server.host_allowed(f"192.168.1.5:{port}") and server.host_allowed(f"[fe80::1]:{port}")
    assert not server.host_allowed(f"evil.example:{port}") and not server.host_allowed(f"192.168.1.5:{port + 1}")


def test_requests_from_other_pages_are_refused(server, generations):
    port = server.server_address[1]
    own = f"http://127.0.0.1:{port}"
    refused = [{"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": f"http://127.0.0.1:{port + 1}"},
               {"Origin": f"https://127.0.0.1:{port}"}, {"Sec-Fetch-Site": "cross-site"},
               {"Sec-Fetch-Site": "same-site"}, {"Origin": own, "Sec-Fetch-Site": "cross-site"}]
    for headers in refused:
        for method, path, body in (("GET", "/", None), ("POST", "/api/generate", {"prompt": PROMPT})):
            status, _, answer = ask(server, method, path, body, headers)
            assert status == 403, (headers, path, answer)
            one_sentence(answer, 403)
    assert generations == []
    for headers in ({"Origin": own, "Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {}):
        status, _, answer = ask(server, "POST", "/api/generate", {"prompt": PROMPT, "max_new_tokens": 2}, headers)
        assert status == 200, (headers, answer)
    assert generations == [2, 2, 2]


@pytest.mark.parametrize("content_type", [None, "text/plain", "text/plain;charset=UTF-8",
                                          "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                          "application/jsonp"])
def test_a_post_must_be_json(server, generations, content_type):
    """What a page on another site can send without asking first (a form, text/plain) is refused, unread."""
    status, _, answer = ask(server, "POST", "/api/generate", b'{"prompt": "Where is Ganymede?"}',
                            {"Content-Type": content_type})
    assert status == 415 and "Content-Type: application/json" in answer["error"], answer
    one_sentence(answer, 415)
    assert generations == []
    status, _, _ = ask(server, "POST", "/api/generate", {"prompt": PROMPT, "max_new_tokens": 1},
                       {"Content-Type": "application/json; charset=utf-8"})
    assert status == 200


# ---------------------------------------------------------------- headers on every answer
def test_every_answer_carries_the_security_headers(server):
    answers = [ask(server, "GET", path) for path in ("/", "/static/app.js", "/static/style.css", "/api/info",
                                                     "/source/minit5/trace.py?find=def%20trace", "/nothing")]
    answers += [ask(server, "POST", "/api/generate", {"prompt": PROMPT, "max_new_tokens": 1}),
                ask(server, "POST", "/api/generate", {"prompt": ""}),
                ask(server, "GET", "/", host="evil.example"), ask(server, "HEAD", "/")]
    answers.append(raw(server, b"GARBAGE\r\n\r\n"))
    assert [a[0] for a in answers] == [200, 200, 200, 200, 200, 404, 200, 400, 403, 200, 400]
    for status, headers, _ in answers:
        csp = headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, status
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Server"] == "minit5-explore", headers["Server"]  # no Python version


def test_listening_beyond_this_machine_says_so(folder, monkeypatch, capsys):
    """One warning line for --host 0.0.0.0 (checked without opening the network: the server is not started)."""
    class NoServer:
        url = "http://test/"

        def __init__(self, explorer, host, port, verbose):
            pass

        def serve_forever(self):
            pass

        def server_close(self):
            pass
    monkeypatch.setattr(explore, "ExploreServer", NoServer)
    for host, warns in (("0.0.0.0", True), ("192.168.1.5", True), ("127.0.0.1", False), ("localhost", False)):
        explore.main(["--model", str(folder), "--host", host, "--port", "0", "--quiet"])
        err = capsys.readouterr().err
        assert (err.count("\n") == 1 and err.startswith(f"warning: --host {host} opens the page to the network")
                and "anyone" in err and "CPU" in err) if warns else err == "", (host, err)


# ---------------------------------------------------------------- one request stays small
def test_the_trace_size_is_bounded_and_says_what_to_lower(server, generations):
    """The issue's request (a 1,000-character prompt, 256 steps, 8 beams, top 50) is refused before generating."""
    body = {"prompt": "a" * 1000, "max_new_tokens": 256, "num_beams": 8, "top": 50}
    status, _, answer = ask(server, "POST", "/api/generate", body)
    assert status == 413, answer
    one_sentence(answer, 413)
    assert "MiB of JSON" in answer["error"] and "lower max_new_tokens or shorten the prompt" in answer["error"]
    assert "256 steps x 1,001 prompt tokens x 2 decoder blocks x 4 heads" in answer["error"]
    assert generations == []


@pytest.mark.parametrize("body", [
    {"prompt": PROMPT, "max_new_tokens": 40},
    {"prompt": "伽尼米德在哪里？" * 4, "max_new_tokens": 30, "do_sample": True, "top": 50, "temperature": 5.0},
    {"prompt": PROMPT, "max_new_tokens": 30, "num_beams": 8, "top": 50},
], ids=["greedy", "sampling", "beam"])
def test_the_estimate_bounds_the_real_size(server, body):
    port = server.server_address[1]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", "/api/generate", json.dumps(body), {"Content-Type": "application/json"})
    data = connection.getresponse().read()
    connection.close()
    trace = json.loads(data)
    estimate = trace_size(trace["settings"], trace["prompt"]["length"], server.explorer.model.config)
    assert len(data) <= sum(estimate.values()) <= 8 * len(data), (len(data), estimate)
    assert sum(estimate.values()) < LIMITS["trace_bytes"]


def test_the_json_is_made_inside_the_queue_slot(server, monkeypatch):
    seen = []
    original = explore.Handler.json_bytes

    def recording(obj):
        seen.append(server.busy)
        return original(obj)
    monkeypatch.setattr(explore.Handler, "json_bytes", staticmethod(recording))
    assert ask(server, "POST", "/api/generate", {"prompt": PROMPT, "max_new_tokens": 3})[0] == 200
    assert seen == [1]  # the trace's JSON was made while its slot was held


def post_and_leave(server, body, opened=None):
    """A socket that sent a whole POST and reads nothing: close it to leave. opened: a list that gets the socket
    before the request is sent, so that code run by the server's generation can already reach it."""
    data = json.dumps(body).encode()
    s = socket.create_connection(server.server_address[:2], timeout=30)
    if opened is not None:
        opened.append(s)
    s.sendall(b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % (server.server_address[1], len(data)) + data)
    return s


def wait_for(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "waited too long"
        time.sleep(0.01)


def test_a_client_that_leaves_stops_its_generation(server, generations):
    body = {"prompt": PROMPT, "max_new_tokens": 200}
    assert ask(server, "POST", "/api/generate", body)[0] == 200
    assert generations == [200]  # this model runs to the limit when the client stays
    generations.clear()
    # waiting in the queue when it leaves: never generates
    with server.explorer.lock:
        client = post_and_leave(server, body)
        wait_for(lambda: server.busy == 1)
        client.close()
    wait_for(lambda: server.busy == 0)
    assert generations == []
    # leaving during the generation: stops within a step or two of it
    model_generate = server.explorer.model.generate
    opened = []  # the leaving client's socket, there before the server can reach step 3 (a busy machine may
    # run the server's first steps before post_and_leave returns)

    def leave_at_step_3(*args, watch, **kwargs):
        def watching(numbers):
            watch(numbers)
            if generations[-1] == 3:
                opened[-1].close()
        return model_generate(*args, watch=watching, **kwargs)
    server.explorer.model.generate = leave_at_step_3
    try:
        post_and_leave(server, body, opened)
        wait_for(lambda: generations and server.busy == 0)
    finally:
        server.explorer.model.generate = model_generate
    assert len(generations) == 1 and 3 <= generations[0] < 20, generations
    assert ask(server, "POST", "/api/generate", {"prompt": PROMPT, "max_new_tokens": 2})[0] == 200


def test_slow_connections_meet_a_cap_and_a_deadline(folder):
    """Three connections that send a header byte every 0.1 s (a slow-loris attack) fill a server capped at three;
    a fourth gets 503 at once; each slow one gets 408 after the 1-second deadline although it never went quiet;
    then the server serves again."""
    server = start(folder, max_connections=3, request_seconds=1.0)
    port = server.server_address[1]
    done = threading.Event()
    try:
        slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]

        def trickle(s):
            try:
                s.sendall(f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode())
                while not done.wait(0.1):
                    s.sendall(b"a")
            except OSError:
                pass  # the server closed it
        threads = [threading.Thread(target=trickle, args=(s,)) for s in slow]
        for thread in threads:
            thread.start()
        wait_for(lambda: server.connections._value == 0, 10)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
            received = b""
            while chunk := extra.recv(65536):
                received += chunk
            status, headers, answer = parse(received)
        assert status == 503 and "too many connections" in answer["error"] and headers["Retry-After"] == "1"
        for s in slow:  # the answer comes while the client is still sending: a deadline, not an idle timeout
            received = b""
            while chunk := s.recv(65536):
                received += chunk
            status, _, answer = parse(received)
            assert status == 408 and not done.is_set(), answer
            one_sentence(answer, 408)
        done.set()
        for thread in threads:
            thread.join(10)
        wait_for(lambda: server.connections._value == 3, 10)
        assert ask(server, "GET", "/api/info")[0] == 200
    finally:
        done.set()
        stop(server)


# ---------------------------------------------------------------- every error in JSON
def request_with_body(server, body: bytes) -> bytes:
    return (b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (server.server_address[1], len(body)) + body)


ERRORS = {  # what is sent -> (status, words the sentence must hold)
    "30,000 nested [": (lambda s: request_with_body(s, b"[" * 30000), 400, "nests too deeply"),
    "a 5,000-digit integer": (lambda s: request_with_body(s, b'{"prompt": "x", "top": ' + b"9" * 5000 + b"}"), 400,
                              "digits"),
    "a 4,000-digit integer": (lambda s: request_with_body(s, b'{"prompt": "x", "seed": ' + b"9" * 4000 + b"}"),
                              400, "seed must be between"),
    "a lone surrogate": (lambda s: request_with_body(s, b'{"prompt": "a\\ud800b"}'), 400, "lone surrogate"),
    "an unknown method": (lambda s: b"FOO / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % s.server_address[1], 405,
                          "FOO is not supported"),
    "a malformed request line": (lambda s: b"GARBAGE\r\n\r\n", 400, "malformed request"),
    "a request line of four words": (lambda s: b"GET / HTTP/1.1 extra\r\n\r\n", 400, "malformed request"),
    "HTTP/0.9": (lambda s: b"GET /\r\n\r\n", 400, "HTTP/0.9"),
    "HTTP/2.0": (lambda s: b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/1.1"),
    "a 20 KiB address": (lambda s: b"GET /?prompt=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (
        b"a" * 20000, s.server_address[1]), 414, "longer than 16,384 bytes"),
    "a 70 KiB address": (lambda s: b"GET /?prompt=%s HTTP/1.1\r\n\r\n" % (b"a" * 70000), 414, "longer than"),
    "101 headers": (lambda s: b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n",
                    431, "headers are too large"),
    "a 70 KiB header": (lambda s: b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431,
                        "headers are too large"),
}


@pytest.mark.parametrize("what", list(ERRORS))
def test_every_error_is_json(server, generations, what):
    make, expected, words = ERRORS[what]
    status, headers, answer = raw(server, make(server))
    assert status == expected, answer
    one_sentence(answer, expected)
    assert words in answer["error"], answer
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert generations == [] and ask(server, "GET", "/api/info")[0] == 200  # and the server still serves


# ---------------------------------------------------------------- in a browser
def test_the_page_works_under_its_content_security_policy(chromium, server, generations, tmp_path):
    """No inline script or style attribute is refused (app.js sets styles through CSSOM), and it draws a trace."""
    query = urllib.parse.urlencode({"prompt": PROMPT, "max_new_tokens": 6, "num_beams": 3})
    dom, log = chromium.dump_dom(f"{server.url}?{query}", tmp_path / "profile", budget_ms=20000)
    refused = [line for line in log.splitlines() if "Content Security Policy" in line]
    assert refused == [], refused[:3]
    assert "steps in" in dom and 'class="node' in dom and "grid-template-columns" in dom
    assert len(generations) == 1


def test_another_page_cannot_frame_it_or_make_it_generate(chromium, server, generations, tmp_path):
    """A page served from another port of 127.0.0.1 frames the explore page with a prompt in its address, POSTs a
    prompt as text/plain (no preflight), as JSON, and from a form: nothing generates, and the server refused the
    frame, not just the browser."""
    refusals = []
    original = server.refusal

    def recording(headers):
        refusals.append((headers.get("Sec-Fetch-Dest"), original(headers)))
        return refusals[-1][1]
    server.refusal = recording
    target = f"{server.url}?" + urllib.parse.urlencode({"prompt": PROMPT, "max_new_tokens": 3})
    api = f"{server.url}api/generate"
    (tmp_path / "attack.html").write_text(f"""<!doctype html><html><body>
<iframe src="{target}"></iframe>
<form id="f" method="POST" action="{api}" enctype="text/plain" target="sink">
  <input name='{{"prompt": "x", "pad": "' value='"}}'></form>
<iframe name="sink"></iframe>
<script>
fetch("{api}", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
                 body: JSON.stringify({{prompt: "Where is Ganymede?"}})}}).catch(() => {{}});
fetch("{api}", {{method: "POST", headers: {{"Content-Type": "application/json"}},
                 body: JSON.stringify({{prompt: "Where is Ganymede?"}})}}).catch(() => {{}});
document.getElementById("f").submit();
</script></body></html>""")
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    other = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        chromium.dump_dom(f"http://127.0.0.1:{other.server_address[1]}/attack.html", tmp_path / "profile",
                          budget_ms=8000)
    finally:
        other.shutdown()
        other.server_close()
        server.refusal = original
    assert generations == []
    assert any(dest == "iframe" and reason for dest, reason in refusals), refusals  # refused before serving
    assert all(reason for _, reason in refusals), refusals
