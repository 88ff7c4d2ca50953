"""The repository is formatted and lint-clean at line length 120 (ruff, configured in pyproject.toml)."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def ruff(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *arguments], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("command", [("format", "--check", "."), ("check", ".")], ids=["format", "lint"])
def test_ruff_passes(command):
    result = ruff(*command)
    assert result.returncode == 0, f"ruff {' '.join(command)} failed:\n{result.stdout}{result.stderr}"


def test_no_line_longer_than_120_characters():
    too_long = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted(ROOT.rglob("*.py"))
        if "runs" not in path.parts and not any(part.startswith(".") for part in path.relative_to(ROOT).parts)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if len(line) > 120
    ]
    assert not too_long, f"lines over 120 characters: {too_long}"
