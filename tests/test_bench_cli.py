"""The benchmark scripts' command lines: a bad argument is one sentence naming it (exit 2), before any model is built.

Each case runs the script as __main__ in this process (torch is imported already, so that is quick), with
torch.set_num_threads, the first step after the checks, made to fail; a few also run as real commands.
"""

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

if torch.cuda.is_available():  # a GPU this machine does not have
    BAD_CUDA = (f"cuda:{torch.cuda.device_count()}", f"this machine has {torch.cuda.device_count()} CUDA GPU(s)")
else:
    BAD_CUDA = ("cuda", "sees no CUDA GPU here")

# id: (script, arguments, what stderr's last line says after "error: ")
CASES = {
    "run-unknown-section": ("run.py", ["--only", "decode", "nothing"], "argument --only: invalid choice: 'nothing'"),
    "run-bad-size": ("run.py", ["--size", "huge"], "argument --size: invalid choice: 'huge'"),
    "run-zero-threads": ("run.py", ["--threads", "0"], "argument --threads: must be at least 1, got 0"),
    "run-negative-reps": ("run.py", ["--reps", "-3"], "argument --reps: must be at least 1, got -3"),
    "run-reps-not-a-number": ("run.py", ["--reps", "five"], "argument --reps: expected a whole number, got 'five'"),
    "run-missing-gpu": ("run.py", ["--device", BAD_CUDA[0]], f"argument --device: '{BAD_CUDA[0]}' asked for, but"),
    "run-not-a-device": ("run.py", ["--device", "gpu0"], "argument --device: 'gpu0' is not a device name"),
    "run-markdown-missing": ("run.py", ["--markdown", "{tmp}/missing.json"],
                             "argument --markdown: {tmp}/missing.json does not exist"),
    "run-markdown-corrupt": ("run.py", ["--markdown", "{tmp}/corrupt.json"],
                             "argument --markdown: {tmp}/corrupt.json is not valid JSON"),
    "run-markdown-not-results": ("run.py", ["--markdown", "{tmp}/list.json"],
                                 "argument --markdown: {tmp}/list.json is not a results file of bench/run.py"),
    "run-markdown-row-incomplete": ("run.py", ["--markdown", "{tmp}/incomplete.json"],
                                    "argument --markdown: {tmp}/incomplete.json is not a results file of bench/run.py"),
    "run-out-is-folder": ("run.py", ["--out", "{tmp}"], "argument --out: {tmp} is a folder"),
    "run-out-under-a-file": ("run.py", ["--out", "{tmp}/corrupt.json/results.json"],
                             "argument --out: cannot write {tmp}/corrupt.json/results.json ({tmp}/corrupt.json is "
                             "not a folder)"),
    "layouts-zero-threads": ("layouts.py", ["--threads", "0"], "argument --threads: must be at least 1, got 0"),
    "int8-zero-reps": ("int8_kernels.py", ["--reps", "0"], "argument --reps: must be at least 1, got 0"),
    "int8-negative-rows": ("int8_kernels.py", ["--rows", "1", "-4"], "argument --rows: must be at least 1, got -4"),
}


# also run as real commands, one case per script (each such process pays about a second for importing torch, so the
# rest of the table runs in this process below)
AS_COMMANDS = ["run-missing-gpu", "layouts-zero-threads", "int8-negative-rows"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench_cli")
    (tmp / "corrupt.json").write_text('{"info": {"size": "small"}, "rows": [')
    (tmp / "list.json").write_text("[1, 2, 3]")
    (tmp / "incomplete.json").write_text(json.dumps({"info": {"size": "small"}, "rows": [{"name": "x"}]}))
    return tmp


def command(case, tmp):
    """The script's path and its arguments; run.py always gets a temporary --out, so a command that wrongly starts
    measuring never writes into bench/results/."""
    script, args, _ = CASES[case]
    args = [a.format(tmp=tmp) for a in args]
    if script == "run.py" and "--out" not in args:
        args += ["--out", str(tmp / "never-written.json")]
    return str(ROOT / "bench" / script), args


@pytest.fixture(scope="module")
def processes(files):
    """case -> (returncode, stderr) of the AS_COMMANDS cases, started all at once to run side by side."""
    running = {}
    for case in AS_COMMANDS:
        script, args = command(case, files)
        running[case] = subprocess.Popen([sys.executable, script, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True)
    results = {}
    for case, proc in running.items():
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:  # it started measuring instead of refusing the argument
            proc.kill()
            _, err = proc.communicate()
        results[case] = (proc.returncode, err)
    return results


def expected_error(case, tmp):
    script, _, expected = CASES[case]
    return f"{script}: error: {expected.format(tmp=tmp)}"


@pytest.mark.parametrize("case", AS_COMMANDS)
def test_bad_argument_on_the_command_line(processes, files, case):
    returncode, stderr = processes[case]
    assert returncode == 2, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith(expected_error(case, files)), stderr


class StartedWork(Exception):
    """Raised by the first step after argument checking in all three scripts (torch.set_num_threads)."""


def run_script(script, args, monkeypatch):
    """Run a bench script as __main__ in this process; return its SystemExit code."""
    def started(*_):
        raise StartedWork(f"{Path(script).name} {' '.join(args)} went past its argument checks")
    monkeypatch.setattr(torch, "set_num_threads", started)
    monkeypatch.setattr(sys, "argv", [script, *args])
    monkeypatch.setattr(sys, "path", list(sys.path))  # the scripts put their folders on it
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(script, run_name="__main__")
    return exit_.value.code


@pytest.mark.parametrize("case", list(CASES))
def test_bad_argument_is_one_sentence_naming_it(files, case, monkeypatch, capsys):
    code = run_script(*command(case, files), monkeypatch)
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    assert stderr.strip().splitlines()[-1].startswith(expected_error(case, files)), stderr
    assert not (files / "never-written.json").exists()


def test_missing_gpu_names_the_problem(processes):
    assert BAD_CUDA[1] in processes["run-missing-gpu"][1]


def test_a_good_results_file_still_prints_its_table(monkeypatch, capsys):
    results = ROOT / "bench" / "results" / "small-cpu.json"
    monkeypatch.setattr(sys, "argv", ["run.py", "--markdown", str(results)])
    runpy.run_path(str(ROOT / "bench" / "run.py"), run_name="__main__")
    stdout = capsys.readouterr().out
    assert "| measurement | unit | transformers | minit5 |" in stdout
    rows = json.loads(results.read_text())["rows"]
    assert stdout.count("\n| ") == len(rows) + 1  # the header, then one line per row (the separator starts "|---")
