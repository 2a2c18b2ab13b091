"""The ``structgen`` command line: output on stdout, stats on stderr, exit status 2 for bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from structgen.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_module_entry_point_prints_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "structgen", "generate", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0
    assert "--regex" in done.stdout and "--max-new-tokens" in done.stdout


def test_invalid_regex_exits_2_with_a_message(capsys) -> None:
    assert main(["generate", "--regex", "(ab", "prompt"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "structgen: error: invalid regex '(ab'" in captured.err


def test_conflicting_constraints_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--regex", "a", "--grammar", "json", "prompt"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_missing_command_and_prompt_exit_2(capsys) -> None:
    for argv in ([], ["generate", "--regex", "a"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "required" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--schema", "/nonexistent/schema.json"], "cannot read schema file"),
        (["--grammar", "no-such-grammar"], "no grammar file 'no-such-grammar'"),
        (["--regex", "a", "--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
        (["--regex", "a", "--particles", "0"], "--particles must be at least 1"),
    ],
)
def test_bad_input_exits_2_before_loading_the_model(capsys, argv, message) -> None:
    assert main(["generate", *argv, "--model", "/nonexistent/model.gguf", "prompt"]) == 2
    assert message in capsys.readouterr().err


def test_schema_that_is_not_json_exits_2(tmp_path, capsys) -> None:
    bad = tmp_path / "schema.json"
    bad.write_text("{not json")
    assert main(["generate", "--schema", str(bad), "prompt"]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_missing_model_exits_2(capsys) -> None:
    assert main(["generate", "--regex", "a", "--model", "/nonexistent/model.gguf", "prompt"]) == 2
    assert "no model at" in capsys.readouterr().err


@pytest.mark.slow
def test_generate_regex_prints_a_match(default_model, capsys) -> None:
    assert main(["generate", "--regex", r"\d{3}-\d{4}", "--seed", "0", "Give me a phone number"]) == 0
    captured = capsys.readouterr()
    assert re.fullmatch(r"\d{3}-\d{4}\n", captured.out)
    assert "tokens" in captured.err and "ms/token" in captured.err


@pytest.mark.slow
def test_greedy_awrs_and_quiet(default_model, capsys) -> None:
    argv = ["generate", "--regex", "(yes|no)", "--temperature", "0", "--sampler", "awrs", "--quiet", "Is it?"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out in ("yes\n", "no\n")
    assert captured.err == ""


@pytest.mark.slow
def test_incomplete_output_exits_1(default_model, capsys) -> None:
    assert main(["generate", "--regex", r"\d{40}", "--max-new-tokens", "2", "--quiet", "Count"]) == 1
    captured = capsys.readouterr()
    assert re.fullmatch(r"\d+\n", captured.out)
    assert "incomplete" in captured.err


@pytest.mark.slow
def test_schema_file(default_model, tmp_path, capsys) -> None:
    try:
        from structgen.compilers.json_schema import compile_json_schema  # noqa: F401
    except ImportError:
        pytest.skip("the JSON Schema compiler is not available")
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    code = main(
        ["generate", "--schema", str(path), "--temperature", "0", "--quiet", "Is water wet? Answer in JSON."]
    )
    out = capsys.readouterr().out
    assert code == 0
    value = json.loads(out)
    assert isinstance(value, dict) and isinstance(value["ok"], bool)
