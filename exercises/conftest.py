"""pytest setup for the exercises.

    python -m pytest exercises                 tests your files (exercises/stepNN_*.py)
    python -m pytest exercises --solutions     the same tests against exercises/solutions/
    python -m pytest exercises -k step03       one step

Each test module names its step (STEP = "step03_attention"); the `impl` fixture imports that step, yours or the
solution, and every test receives it as its argument.
"""

import importlib
import os

import pytest

try:  # the tests compare with minit5 and transformers: a missing package is an error, not a skip
    import torch
    import transformers
except ImportError as e:  # pragma: no cover
    pytest.exit(f"{e}; the exercises need the test extra: pip install -e \".[test]\"", returncode=4)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tests never reach for the network
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

DEFAULT_DEMO_MODEL = "out/demo"  # where `python train.py` saves its model


def pytest_addoption(parser):
    group = parser.getgroup("minit5 exercises")
    group.addoption("--solutions", action="store_true", default=False,
                    help="run the exercise tests against exercises/solutions/ instead of your files")
    group.addoption("--demo-model", default=None,
                    help=f"model folder for the last step (default: $MINIT5_DEMO_MODEL, else {DEFAULT_DEMO_MODEL})")


def pytest_report_header(config):
    if config.getoption("solutions"):
        return "minit5 exercises: testing the reference solutions in exercises/solutions/"
    return "minit5 exercises: testing your files exercises/stepNN_*.py (--solutions: the reference solutions)"


def load_step(step: str, solutions: bool):
    package = "exercises.solutions" if solutions else "exercises"
    return importlib.import_module(f"{package}.{step}")


@pytest.fixture
def impl(request):
    """The step under test: your module, or with --solutions the reference one."""
    return load_step(request.module.STEP, request.config.getoption("solutions"))


@pytest.fixture
def demo_model(request):
    return request.config.getoption("demo_model") or os.environ.get("MINIT5_DEMO_MODEL") or DEFAULT_DEMO_MODEL
