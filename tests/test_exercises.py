"""The exercises (exercises/, docs/exercises.md) stay solvable and their tests stay meaningful:

1. the reference solutions pass every exercise test (`python -m pytest exercises --solutions`), so a change in
   minit5 cannot silently make a step unsolvable. Step 12's few-minute training run (marked `training`) is left
   out here; its fast test runs the recipe's first steps with the solutions and minit5's trainer, which must
   agree, and the shipped exercises/demo_model (minit5's trainer on the same recipe) must answer in steps 7 and 11;
2. the untouched skeletons fail every test with NotImplementedError (`python -m pytest exercises`): nothing
   passes by accident;
3. each step's tests reject plausible wrong implementations (tests/exercise_mistakes.py), with the message that
   explains the mistake;
4. every skeleton asks for the functions and signatures its solution has.
"""

import importlib
import inspect
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `exercises` is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from exercise_mistakes import MISTAKES  # noqa: E402

from exercises._support import DEMO_MODEL  # noqa: E402
from exercises.conftest import Say  # noqa: E402
from exercises.progress import STEPS, explaining_line, run_tests, summary  # noqa: E402


def test_reference_solutions_pass_every_exercise_test():
    by_step = run_tests(solutions=True)
    assert len(STEPS) >= 12 and all(by_step[step] for step in STEPS), f"a step without tests: {by_step}"
    problems = [f"{step}::{name}: {outcome} {message[:300]}" for step, results in by_step.items()
                for name, outcome, message in results if outcome != "passed"]
    assert not problems, "the reference solutions fail exercise tests:\n" + "\n".join(problems)
    text, all_done = summary(by_step)
    assert all_done and "python -m pytest exercises -k step12" in text.splitlines()[-1], text


def test_untouched_skeletons_fail_every_test_with_not_implemented_error():
    by_step = run_tests(solutions=False, training=True)
    assert by_step["step12_train"], "step 12 has no tests"
    problems = [f"{step}::{name}: {outcome} {message[:200]}" for step, results in by_step.items()
                for name, outcome, message in results
                if not (outcome == "failed" and "NotImplementedError" in message)]
    assert not problems, "these exercise tests do not fail with NotImplementedError on the skeletons:\n" + \
        "\n".join(problems)


def test_every_step_has_a_wrong_implementation_to_reject():
    assert {step for step, *_ in MISTAKES} == set(STEPS)


@pytest.mark.parametrize("step, test_name, wrong, explanation", MISTAKES,
                         ids=[f"{m[0][:6]}-{m[1].removeprefix('test_')[:28]}-{i}" for i, m in enumerate(MISTAKES)])
def test_step_tests_reject_a_plausible_mistake(step, test_name, wrong, explanation, tmp_path):
    test = getattr(importlib.import_module(f"exercises.test_{step}"), test_name)
    fixtures = {"impl": wrong, "tmp_path": tmp_path, "say": Say(None), "demo_model": DEMO_MODEL}
    arguments = {name: fixtures[name] for name in inspect.signature(test).parameters}
    with pytest.raises(AssertionError) as failure:
        test(**arguments)
    assert re.search(explanation, str(failure.value), re.S), \
        f"{step} {test_name} rejected the mistake, but its message does not explain it:\n{failure.value}"
    # python -m exercises.progress shows one line of the message: the one that explains
    assert re.search(explanation.split(".*")[-1], explaining_line(str(failure.value))) or \
        re.search(explanation, explaining_line(str(failure.value)), re.S), \
        f"python -m exercises.progress would show {explaining_line(str(failure.value))!r}, not the explanation"


def interface(module) -> dict:
    """The functions and classes a step file defines, with their signatures (methods included)."""
    found = {}
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            found[name] = str(inspect.signature(obj)).replace(".solutions.", ".")
        elif inspect.isclass(obj):
            found[name] = "class"
            for member, fn in vars(obj).items():
                if inspect.isfunction(fn) and (member == "__init__" or not member.startswith("_")):
                    found[f"{name}.{member}"] = str(inspect.signature(fn)).replace(".solutions.", ".")
    return found


@pytest.mark.parametrize("step", STEPS)
def test_skeleton_and_solution_have_the_same_interface(step):
    skeleton = importlib.import_module(f"exercises.{step}")
    solution = importlib.import_module(f"exercises.solutions.{step}")
    mine, theirs = interface(skeleton), interface(solution)
    # A solution may add helpers (Attention.split_heads); everything the skeleton asks for must match exactly.
    differences = {name: (sig, theirs.get(name)) for name, sig in mine.items() if theirs.get(name) != sig}
    assert not differences, f"exercises/{step}.py and its solution disagree (skeleton, solution): {differences}"
    assert mine, f"exercises/{step}.py defines nothing to fill in"


def test_progress_names_the_first_unfinished_step_and_its_explanation():
    """progress shows, for the first step that is not done, the line that explains and that step's command."""
    done = [("test_a", "passed", "")]
    by_step = {step: done for step in STEPS}
    by_step[STEPS[2]] = [("test_attention_has_no_scaling", "failed", (
        "AssertionError: attention(q, k, v, bias) differs from the reference: max |difference| 0.3 (allowed 1e-05).\n"
        "Your result equals what this mistake gives: the scores are divided by sqrt(d_kv) = 4."))]
    by_step[STEPS[4]] = [("test_b", "failed", "NotImplementedError: step 5: Block.__init__")]
    text, all_done = summary(by_step)
    assert not all_done
    assert f"Next: {STEPS[2]}.py" in text and "the scores are divided by sqrt(d_kv) = 4." in text, text
    assert text.splitlines()[-1].endswith("python -m pytest exercises -k step03"), text
    by_step[STEPS[2]] = done
    text, _ = summary(by_step)
    assert "NotImplementedError: step 5: Block.__init__" in text and text.endswith("-k step05"), text
