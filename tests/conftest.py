"""Shared test setup: the reference library must be present (no silent skips), and threads are pinned."""

import os
import sys

import pytest

INSTALL_HINT = 'the tests need the test extra: pip install torch==2.13.0 -e ".[test]"'

try:  # a missing test dependency is an error with the install hint, never a skipped test
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import tokenizers  # noqa: F401
    import safetensors  # noqa: F401
    import importlib.util
    for name in ("peft", "rouge_score"):  # the LoRA and ROUGE references; found, not imported (slow imports)
        if importlib.util.find_spec(name) is None:
            raise ImportError(f"No module named {name!r}")
except ImportError as e:  # pragma: no cover - exercised only on a broken install
    pytest.exit(f"{e}; {INSTALL_HINT}", returncode=4)

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for the network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
transformers.logging.set_verbosity_error()
try:
    transformers.utils.logging.disable_progress_bar()
except AttributeError:  # pragma: no cover
    pass


# ---------------------------------------------------------------------------------------------- shared models
from hf_models import VARIANTS, build_hf_model  # noqa: E402


@pytest.fixture(scope="session")
def hf_folder(tmp_path_factory):
    """A random Hugging Face reference model in its folder, built once per session for each set of arguments:
    hf_folder(variant, eos_likely=False, **overrides) -> Path (see hf_models.build_hf_model). The folder is
    shared by every test that asks for the same model: read it, never write into it (copy it first)."""
    built = {}

    def folder(variant: str, eos_likely: bool = False, **overrides):
        key = (variant, eos_likely, tuple(sorted(overrides.items())))
        if key not in built:
            name = "-".join([variant, *(["eos"] if eos_likely else []), *(f"{k}{v}" for k, v in key[2])])
            built[key] = build_hf_model(variant, tmp_path_factory.mktemp(name), eos_likely=eos_likely,
                                        **overrides)[1]
        return built[key]
    return folder


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny models, where a second thread only adds waiting (a lot of it on a
    busy machine); the count is put back afterwards. Used with pytestmark = pytest.mark.usefixtures("one_thread")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", params=list(VARIANTS))
def variant(request):
    """Every T5 variant of hf_models.VARIANTS in turn."""
    return request.param


@pytest.fixture(scope="session")
def doc_script():
    """A script of docs/scripts/ imported as a module: doc_script("common") (its folder on sys.path meanwhile,
    so that it can import its neighbours)."""
    import importlib.util
    from pathlib import Path
    scripts = Path(__file__).resolve().parents[1] / "docs" / "scripts"

    def load(name: str):
        sys.path.insert(0, str(scripts))
        try:
            spec = importlib.util.spec_from_file_location(f"docs_script_{name}", scripts / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(scripts))
        return module
    return load


@pytest.fixture
def variant_model(variant, hf_folder):
    """A fresh minit5 model of every variant in turn, EOS made likely so that generation ends at varied steps."""
    from minit5 import T5
    return T5.from_pretrained(hf_folder(variant, eos_likely=True))


# ---------------------------------------------------------------------------------------------- the browser
class Chromium:
    """Headless Chromium (Debian's package; .ci/run installs it), as the page tests drive it."""

    def __init__(self, binary: str):
        self.binary = binary

    def dump_dom(self, url: str, profile, flags=(), budget_ms: int = 30000) -> tuple[str, str]:
        """(the page's DOM once its scripts ran, Chromium's log, which holds the page's console and CSP messages).
        The background-networking flags keep it from reaching for Google's hosts, which this machine cannot."""
        import subprocess
        result = subprocess.run([self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                 f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                                 f"--virtual-time-budget={budget_ms}", *flags, "--dump-dom", url],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-2000:]
        return result.stdout, result.stderr


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    """The browser, or a failure that says how to install it; a skip only where MINIT5_SKIP_BROWSER=1 asks."""
    import shutil
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("MINIT5_SKIP_BROWSER") == "1":
            pytest.skip("MINIT5_SKIP_BROWSER=1: the browser test is skipped on purpose")
        pytest.fail("the browser test needs Chromium: apt-get install chromium (.ci/run installs it), "
                    "or set MINIT5_SKIP_BROWSER=1 to skip it on purpose")
    return Chromium(binary)


# ---------------------------------------------------------------------------------------------- the trainer
@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """A tiny model config and text-to-text pairs for the trainer tests (tests/trainer_runs.py runs them): tiny.json,
    pairs.jsonl (reverse a word), dev.jsonl, corpus.txt (for span corruption)."""
    import json
    from minit5 import T5Config
    folder = tmp_path_factory.mktemp("train_files")
    config = T5Config(vocab_size=384, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2, num_decoder_layers=2,
                      feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0)
    config.save(folder / "tiny.json")
    words = ["apple", "river", "stone", "cloud", "maple", "tiger", "lemon", "ocean", "piano", "robot"]
    with open(folder / "pairs.jsonl", "w") as f:
        for i in range(96):
            w = words[i % len(words)] + str(i)
            f.write(json.dumps({"input": f"Reverse {w}.", "target": w[::-1]}) + "\n")
    with open(folder / "dev.jsonl", "w") as f:
        for w in words[:8]:
            f.write(json.dumps({"input": f"Reverse {w}.", "target": w[::-1]}) + "\n")
    (folder / "corpus.txt").write_text("\n".join(f"The {w} number {i} sat quietly by the {words[(i * 7) % 10]} "
                                                 f"while the wind moved." for i, w in enumerate(words * 6)))
    return folder
