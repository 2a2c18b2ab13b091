"""JSON-Schema-Test-Suite (draft 2020-12) at the token level, held at or above the recorded pass counts.

Every case is run with the SmolLM2 vocabulary: valid instances (compact and indented) must be accepted
token by token and end accepting, invalid ones refused. Each file must pass at least as many cases as
``tests/data/json_schema_pass_counts.json`` records (so coverage only goes up), and no invalid instance
may ever be accepted. The runner lives in ``benchmarks/json_schema_test_suite.py`` (which prints the table).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / ".." / "shared" / "data" / "json-schema-test-suite"
PASS_COUNTS = json.loads((REPO / "tests" / "data" / "json_schema_pass_counts.json").read_text())


def _runner():
    spec = importlib.util.spec_from_file_location(
        "json_schema_test_suite", REPO / "benchmarks" / "json_schema_test_suite.py"
    )
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runner():
    if not SUITE.is_dir():
        pytest.skip(f"JSON-Schema-Test-Suite not found at {SUITE}")
    return _runner()


@pytest.fixture(scope="module")
def registry(runner):
    return runner.remotes_registry()


@pytest.mark.parametrize("name", sorted(PASS_COUNTS))
def test_suite_file(name, runner, registry, smollm2_vocab, smollm2_tokenizer):
    def encode(text: str) -> list[int]:
        return list(smollm2_tokenizer.encode(text, add_special_tokens=False))

    path = SUITE / "tests" / "draft2020-12" / f"{name}.json"
    result = runner.run_file(path, smollm2_vocab, encode, registry)
    assert result.invalid_accepted == 0, result.failures
    assert result.passed >= PASS_COUNTS[name], result.failures


def test_every_suite_file_has_a_recorded_count(runner):
    names = {p.stem for p in runner.suite_files()}
    assert names == set(PASS_COUNTS)


def test_masks_agree_with_accepts_on_suite_sample(runner, registry, smollm2_vocab, smollm2_tokenizer):
    """Masks are what generation uses: on a sample of files every mask must equal token-by-token accepts()."""

    def encode(text: str) -> list[int]:
        return list(smollm2_tokenizer.encode(text, add_special_tokens=False))

    for name in ("uniqueItems", "ref", "patternProperties"):
        path = SUITE / "tests" / "draft2020-12" / f"{name}.json"
        result = runner.run_file(path, smollm2_vocab, encode, registry, check_masks=True)
        assert result.invalid_accepted == 0
