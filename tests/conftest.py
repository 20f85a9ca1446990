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
