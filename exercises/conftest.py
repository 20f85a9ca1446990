"""pytest setup for the exercises.

    python -m pytest exercises                 tests your files (exercises/stepNN_*.py)
    python -m pytest exercises --solutions     the same tests against exercises/solutions/
    python -m pytest exercises -k step03       one step
    python -m pytest exercises -m "not training"   everything but step 12's few-minute training run

Each test module names its step (STEP = "step03_attention"); the `impl` fixture imports that step, yours or the
solution, and every test receives it as its argument.
"""

import contextlib
import importlib
import os

import pytest

try:  # the tests compare with minit5 and transformers: a missing package is an error, not a skip
    import torch
    import transformers
except ImportError as e:  # pragma: no cover
    pytest.exit(f"{e}; the exercises need their extra: pip install -e \".[exercises]\"", returncode=4)

from ._support import DEMO_MODEL

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))  # at most 2; OMP_NUM_THREADS=1 is kept
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tests never reach for the network
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()


def pytest_addoption(parser):
    group = parser.getgroup("minit5 exercises")
    group.addoption("--solutions", action="store_true", default=False,
                    help="run the exercise tests against exercises/solutions/ instead of your files")
    group.addoption("--demo-model", default=None,
                    help=f"trained model folder for steps 7 and 11 (default: $MINIT5_DEMO_MODEL, else the small "
                         f"model shipped in {DEMO_MODEL.name}/)")


def pytest_configure(config):
    config.addinivalue_line("markers", "training: step 12's full training run (a few minutes)")
    # A failing exercise test says what is wrong in its message; the lines of code around it only hide that.
    if config.getoption("tbstyle", "auto") == "auto":
        config.option.tbstyle = "short"


@pytest.hookimpl(tryfirst=True)  # before -m "not training" deselects
def pytest_collection_modifyitems(items):
    for item in items:  # a test module lists its long runs in TRAINING_RUNS
        if item.originalname in getattr(item.module, "TRAINING_RUNS", ()):
            item.add_marker(pytest.mark.training)


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
    return request.config.getoption("demo_model") or os.environ.get("MINIT5_DEMO_MODEL") or DEMO_MODEL


class Say:
    """say(text): print to the terminal now, even while pytest captures output (the moments worth seeing).
    with say.live(): everything printed inside goes to the terminal as it happens (a training run's progress)."""

    def __init__(self, capture):
        self.capture = capture

    def __call__(self, text="", end="\n"):
        with self.live():
            print(text, end=end, flush=True)

    def live(self):
        if self.capture is None:
            return contextlib.nullcontext()
        return self.capture.global_and_fixture_disabled()


@pytest.fixture
def say(request):
    return Say(request.config.pluginmanager.getplugin("capturemanager"))
