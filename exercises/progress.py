"""Where you are in the exercises:  python -m exercises.progress [--solutions] [--demo-model DIR]

Runs every step's tests (quietly, in this process; not step 12's few-minute training run) and prints one line
per step: done, not started (your file still raises NotImplementedError) or in progress. Then, for the first step
that is not done: the test that fails, the line of its message that explains why, and the command that shows
all of it. Once every step is done, the last line is the command of the reward: your code training your T5.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
STEPS = sorted(p.stem for p in HERE.glob("step[0-9][0-9]_*.py"))
TRAINING = "training"  # the marker of step 12's training run, left out here (python -m pytest exercises runs it)
REWARD_COMMAND = "python -m pytest exercises -k step12      (or: python -m exercises.train_loop)"


class Collector:
    """A pytest plugin that keeps each test's outcome and, for failures, the exception text."""

    def __init__(self):
        self.results = {}  # nodeid -> (outcome, message)

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            message = ""
            if report.failed:
                crash = getattr(report.longrepr, "reprcrash", None)
                message = crash.message if crash is not None else str(report.longrepr)
            elif report.skipped and isinstance(report.longrepr, tuple):
                message = report.longrepr[2]
            if report.when == "call" or report.nodeid not in self.results:
                self.results[report.nodeid] = (report.outcome, message)


def run_tests(solutions: bool = False, extra_args=(), quiet: bool = True, training: bool = False) -> dict:
    """Run the exercise tests (without step 12's training run unless training=True);
    returns {step: [(test name, outcome, message), ...]}."""
    collector = Collector()
    args = [str(HERE), "-p", "no:cacheprovider", "-q", "--tb=short", *(["--solutions"] if solutions else []),
            *([] if training else ["-m", f"not {TRAINING}"]), *extra_args]
    output = io.StringIO()
    with contextlib.redirect_stdout(output) if quiet else contextlib.nullcontext():
        code = pytest.main(args, plugins=[collector])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        raise RuntimeError(f"pytest could not run the exercises (exit code {code}):\n{output.getvalue()[-3000:]}")
    by_step = {step: [] for step in STEPS}
    for nodeid, (outcome, message) in collector.results.items():
        match = re.search(r"test_(step\d\d_\w+)\.py::(\w+)", nodeid)
        if match and match.group(1) in by_step:
            by_step[match.group(1)].append((match.group(2), outcome, message))
    return by_step


def explaining_line(message: str) -> str:
    """The line of a failure message that says what is wrong: a named mistake, else the first line of advice
    after what was compared (data lines are indented), else the first line."""
    message = re.split(r"\n\s*assert ", message, maxsplit=1)[0]  # pytest's own account of a plain assert follows
    message = re.sub(r"^(AssertionError|E)\s*:\s*", "", message.strip())
    lines = [line.rstrip() for line in message.splitlines() if line.strip()]
    lines[1:] = textwrap.dedent("\n".join(lines[1:])).splitlines()  # pytest indents a plain assert's later lines
    for line in lines:
        if "what this mistake gives:" in line:
            return line.split("gives:", 1)[1].strip()
    data = re.compile(r"^[\[\(\-\d]|^(expected|inputs|targets)\b|values differ|differs from the reference|"
                      r"^Row\(s\)")
    for i, line in enumerate(lines[1:], start=1):
        if line[0].isspace() or data.search(line):
            continue
        if line.endswith(":") and i + 1 < len(lines):  # a heading: what it introduces explains
            return f"{line} {lines[i + 1].strip()}"
        return line
    return lines[0] if lines else ""


def step_status(results) -> tuple[str, list]:
    passed = sum(outcome == "passed" for _, outcome, _ in results)
    failures = [(name, message) for name, outcome, message in results if outcome == "failed"]
    if not failures and passed:
        return "done", failures
    if failures and all("NotImplementedError" in m for _, m in failures) and passed == 0:
        return "not started", failures
    return "in progress", failures


def summary(by_step: dict) -> tuple[str, bool]:
    lines, first_open = [], None
    for step, results in by_step.items():
        status, failures = step_status(results)
        passed = sum(outcome == "passed" for _, outcome, _ in results)
        lines.append(f"  {step:<28} {passed}/{len(results)} tests   {status}")
        if status != "done" and first_open is None:
            first_open = (step, failures)
    if first_open is None:
        lines.append(f"\nEvery step passes. The reward, your code training your own T5 (a few minutes): "
                     f"{REWARD_COMMAND}")
        return "\n".join(lines), True
    step, failures = first_open
    number = re.match(r"step(\d\d)", step).group(1)
    lines.append(f"\nNext: {step}.py")
    if failures:
        name, message = failures[0]
        reason = "NotImplementedError: " + message.split("NotImplementedError:", 1)[1].strip().splitlines()[0] \
            if "NotImplementedError" in message else explaining_line(message)
        lines.append(f"  {name} fails:")
        lines += textwrap.wrap(reason, width=110, initial_indent="    ", subsequent_indent="    ")
    lines.append(f"  the whole message: python -m pytest exercises -k step{number}")
    return "\n".join(lines), False


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--solutions", action="store_true", help="show the reference solutions' results instead")
    p.add_argument("--demo-model", help="trained model folder for steps 7 and 11 (default: exercises/demo_model)")
    args = p.parse_args(argv)
    extra = ["--demo-model", args.demo_model] if args.demo_model else []
    try:
        text, all_done = summary(run_tests(args.solutions, extra))
    except RuntimeError as e:
        sys.exit(f"error: {e}")
    print(("reference solutions" if args.solutions else "your steps (exercises/stepNN_*.py)") + ":")
    print(text)
    return 0 if all_done else 1


if __name__ == "__main__":
    sys.exit(main())
