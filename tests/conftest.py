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
