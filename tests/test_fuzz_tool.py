"""tools/fuzz_kernels.py, the differential fuzzer of the fast kernels against the reference:
a few seconds of it find no difference, a case replays, and its CLI answers --help."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))

import fuzz_kernels  # noqa: E402


def test_fuzz_short_run_finds_nothing(capsys):
    assert fuzz_kernels.main(["--seconds", "3", "--seed", "11", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "0 differ, 0 raised in one only" in out, out


@pytest.mark.parametrize("fam", fuzz_kernels.FAMILIES)
def test_fuzz_each_family(fam, capsys):
    assert fuzz_kernels.main(["--cases", "60", "--seconds", "20", "--seed", "5", "--ops", fam, "--quiet"]) == 0
    assert "60 cases" in capsys.readouterr().out


def test_fuzz_replay_is_the_same_case(capsys):
    levels = fuzz_kernels.available_levels()
    a = fuzz_kernels.make_case(3, 17, list(fuzz_kernels.FAMILIES), levels, [1, 2], ["onnx"])
    b = fuzz_kernels.make_case(3, 17, list(fuzz_kernels.FAMILIES), levels, [1, 2], ["onnx"])
    assert a[:5] == b[:5] and fuzz_kernels.describe(a[5], a[6]) == fuzz_kernels.describe(b[5], b[6])
    assert fuzz_kernels.main(["--seed", "3", "--replay", "17"]) == 0
    assert "case 17 (seed 3)" in capsys.readouterr().out


def test_fuzz_cli_help():
    r = subprocess.run([sys.executable, os.path.join(HERE, "..", "tools", "fuzz_kernels.py"), "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--replay" in r.stdout and "--case-timeout" in r.stdout


@pytest.mark.slow
def test_fuzz_a_minute_at_more_threads_than_cores(capsys):
    """A minute of every family at 1, 2 and 3 threads (slow: run with -m slow)."""
    assert fuzz_kernels.main(["--seconds", "60", "--seed", "77", "--threads", "1", "2", "3", "--quiet"]) == 0
    assert "0 differ, 0 raised in one only" in capsys.readouterr().out
