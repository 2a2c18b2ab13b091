"""Compiled predicates (``predicate.py``) give jsonschema's verdict: the official Test Suite and MaskBench.

The reference is :meth:`SchemaContext.jsonschema_is_valid` (the validator :meth:`SchemaContext.is_valid`
used before predicates existed). Wherever :func:`compile_predicate` gives a predicate, it must return
the same verdict for every instance, at the root and at every node the runtime checker walks to
(through ``$ref``/``allOf``/``anyOf``/``oneOf``/``then``/``else`` and ``properties``/``items``...).
A predicate may raise instead (``is_valid`` then asks jsonschema): on these instances, only where
jsonschema raises too. Suite cases also hold the suite's own "valid" flag where jsonschema
agrees with it (formats are asserted in ``optional/format`` only, as the suite intends).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from structgen.compilers.json_schema.predicate import compile_predicate
from structgen.compilers.json_schema.runtime import ValueChecker
from structgen.compilers.json_schema.schema import Node, SchemaContext, registry_from_directory

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data"
SUITE = DATA / "json-schema-test-suite"
BENCH = DATA / "jsonschemabench"
REMOTES_URI = "http://localhost:1234/"
SUITE_DRAFTS = ("draft2020-12", "draft2019-09", "draft7", "draft6", "draft4")
BENCH_SAMPLE = 40  # schemas per MaskBench group file
WALK_LIMIT = 40  # (node, sub-value) comparisons per instance below the root
BENCH_COVERAGE_FLOOR = 0.95  # fraction of sampled MaskBench roots that compile to a predicate


class Mismatch(AssertionError):
    """A predicate disagreed with jsonschema."""


def _outcome(function: Any, value: Any) -> Any:
    try:
        return function(value)
    except Exception as exc:
        return f"raised {type(exc).__name__}"


def _compare(ctx: SchemaContext, node: Node, value: Any, where: str) -> bool | None:
    """Predicate vs jsonschema at ``node``; None when no predicate compiled there."""
    pred = compile_predicate(ctx, node)
    if pred is None:
        return None
    expected = _outcome(lambda v: ctx.jsonschema_is_valid(node, v), value)
    got = _outcome(pred, value)
    if got != expected and not (isinstance(got, str) and not isinstance(expected, bool)):
        raise Mismatch(
            f"{where} at {node.pointer or '/'}: predicate {got!r}, jsonschema {expected!r} for {value!r:.300}"
        )
    return bool(got) if isinstance(got, bool) else None


def _in_place(ctx: SchemaContext, node: Node, depth: int = 0) -> Iterator[Node]:
    """``node`` and the nodes the runtime reaches from it without stepping into the value."""
    yield node
    schema = node.schema
    if not isinstance(schema, dict) or depth > 8:
        return
    subs = []
    if isinstance(schema.get("$ref"), str):
        with contextlib.suppress(Exception):  # unresolvable: nothing to walk there
            subs.append(ctx.resolve(node, schema["$ref"]))
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            subs.extend(ctx.child(node, sub, key, i) for i, sub in enumerate(schema[key]))
    subs.extend(ctx.child(node, schema[k], k) for k in ("then", "else") if k in schema)
    for sub in subs:
        yield from _in_place(ctx, sub, depth + 1)


def _walk(ctx: SchemaContext, root: Node, instance: Any, where: str) -> int:
    """Compare predicate and jsonschema along the instance's members and items; returns comparisons."""
    walker = ValueChecker(ctx, frozenset())
    queue = [(root, instance, 0)]
    seen: set = set()
    done = 0
    while queue and done < WALK_LIMIT:
        node, value, depth = queue.pop(0)
        for current in _in_place(ctx, node):
            if not isinstance(current.schema, dict) or (current.key, id(value)) in seen:
                continue
            seen.add((current.key, id(value)))
            if depth and _compare(ctx, current, value, where) is not None:
                done += 1
            if depth > 6:
                continue
            steps = (
                value.items()
                if isinstance(value, dict)
                else enumerate(value)
                if isinstance(value, list)
                else ()
            )
            for step, sub_value in steps:
                try:
                    children = walker._children(current, step)
                except Exception:
                    continue
                queue.extend((child, sub_value, depth + 1) for child in children)
    return done


# -- JSON-Schema-Test-Suite ----------------------------------------------------------------------------------


def _suite_files() -> list[tuple[str, Path]]:
    if not SUITE.is_dir():
        return []
    found = []
    for draft in SUITE_DRAFTS:
        folder = SUITE / "tests" / draft
        if folder.is_dir():
            found.extend((draft, path) for path in sorted(folder.rglob("*.json")))
    return found


@pytest.fixture(scope="module")
def remotes() -> Any:
    if not SUITE.is_dir():
        pytest.skip(f"JSON-Schema-Test-Suite not found at {SUITE}")
    return registry_from_directory(SUITE / "remotes", REMOTES_URI)


_DIALECTS = {
    "draft2019-09": "https://json-schema.org/draft/2019-09/schema",
    "draft7": "http://json-schema.org/draft-07/schema#",
    "draft6": "http://json-schema.org/draft-06/schema#",
    "draft4": "http://json-schema.org/draft-04/schema#",
}


@pytest.mark.parametrize(
    ("draft", "path"),
    _suite_files(),
    ids=[f"{d}/{p.relative_to(SUITE / 'tests' / d).as_posix()}" for d, p in _suite_files()],
)
def test_suite_file(draft: str, path: Path, remotes: Any) -> None:
    """Every case whose root compiles: the predicate gives jsonschema's verdict (and the suite's)."""
    assert_formats = "format" in path.relative_to(SUITE / "tests" / draft).parts[:-1]
    compiled = 0
    for group in json.loads(path.read_text(encoding="utf-8")):
        schema = group["schema"]
        if draft in _DIALECTS and isinstance(schema, dict) and "$schema" not in schema:
            schema = {"$schema": _DIALECTS[draft], **schema}
        try:
            ctx = SchemaContext(schema, registry=remotes, assert_formats=assert_formats, check_schema=False)
        except Exception:
            continue
        root = ctx.root()
        if compile_predicate(ctx, root) is None:
            continue
        compiled += 1
        for case in group["tests"]:
            where = f"{path.name}: {group['description']} / {case['description']}"
            verdict = _compare(ctx, root, case["data"], where)
            if verdict is not None and ctx.jsonschema_is_valid(root, case["data"]) == case["valid"]:
                assert verdict == case["valid"], where
            _walk(ctx, root, case["data"], where)
    assert compiled or path.name in _NEVER_COMPILED, f"no group of {path.name} compiled"
    if draft == "draft2020-12":
        _cross_draft(path, remotes, assert_formats)


def _cross_draft(path: Path, remotes: Any, assert_formats: bool) -> None:
    """The file's schemas read as drafts 2019-09, 7 and 4 (the dialects MaskBench schemas use), against
    every instance of the file: no expected verdicts there, but the predicate must still be jsonschema's."""
    groups = json.loads(path.read_text(encoding="utf-8"))
    instances = [case["data"] for group in groups for case in group["tests"]]
    for group in groups:
        if not isinstance(group["schema"], dict):
            continue
        for draft in ("draft2019-09", "draft7", "draft4"):
            schema = {**group["schema"], "$schema": _DIALECTS[draft]}
            try:
                ctx = SchemaContext(
                    schema, registry=remotes, assert_formats=assert_formats, check_schema=False
                )
            except Exception:
                continue
            for instance in instances:
                _compare(ctx, ctx.root(), instance, f"{path.name} as {draft}: {group['description']}")


# Files all of whose schemas use what predicates leave to jsonschema (dynamic references, unevaluated*,
# references to the 2020-12 metaschema, which uses $dynamicRef).
_NEVER_COMPILED = {
    "dynamicRef.json",
    "unevaluatedItems.json",
    "unevaluatedProperties.json",
    "vocabulary.json",
    "defs.json",
    "cross-draft.json",
}


def test_suite_has_files() -> None:
    """The parametrization above found the 2020-12 suite (else every suite case would be skipped)."""
    if not SUITE.is_dir():
        pytest.skip(f"JSON-Schema-Test-Suite not found at {SUITE}")
    assert any(draft == "draft2020-12" for draft, _ in _suite_files())


# -- hand-made cases for what the suite does not pin down ----------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "instances"),
    [
        # additionalProperties decides "additional" with Python's re on the joined patterns.
        (
            {"patternProperties": {"^\\d+$": {"type": "string"}}, "additionalProperties": False},
            [{"12": "a"}, {"١٢": "a"}, {"x": 1}, {"12": 3}],
        ),
        # A nested "$schema" switches to the plain class (Python re for pattern).
        (
            {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "properties": {"a": {"$ref": "#"}, "s": {"pattern": "^\\d$"}},
            },
            [{"s": "1"}, {"s": "١"}, {"a": {"s": "١"}}, {"a": {"a": {"s": "x"}}}],
        ),
        # Draft 4: integers exclude 1.0, boolean exclusiveMinimum, $ref overrides siblings.
        (
            {
                "$schema": "http://json-schema.org/draft-04/schema#",
                "definitions": {"n": {"type": "integer", "minimum": 1, "exclusiveMinimum": True}},
                "properties": {"n": {"$ref": "#/definitions/n", "maximum": 0}, "m": {"type": "integer"}},
            },
            [{"n": 1}, {"n": 2}, {"n": 2.0}, {"m": 1.0}, {"m": True}, {"n": 5}],
        ),
        # Draft 7 items/additionalItems, contains, dependencies in both forms, multipleOf floats.
        (
            {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "items": [{"type": "string"}, {"multipleOf": 0.01}],
                "additionalItems": False,
                "contains": {"const": 1},
                "dependencies": {"a": ["b"], "c": {"required": ["d"]}},
            },
            [["x", 1], ["x", 0.07], ["x", 1, 1], [1], ["x", 0.075], ["x", 1e308], {"a": 1}, {"c": 1, "d": 2}],
        ),
        # enum/const/uniqueItems: 1 == 1.0, True != 1, nested.
        (
            {"enum": [1, True, [1, {"a": None}], "x"], "uniqueItems": True},
            [1.0, True, False, 0, [1.0, {"a": None}], [True, {"a": None}], "x", [[1], [True]]],
        ),
        (
            {"uniqueItems": True},
            [[1, 1.0], [1, True], [[1], [True], [1]], [{"a": 1}, {"a": 1.0}], ["a", "b"]],
        ),
        # 2020-12 contains with min/max, prefixItems with items false, dependentSchemas.
        (
            {
                "prefixItems": [{"type": "integer"}],
                "items": False,
                "contains": {"type": "integer"},
                "minContains": 1,
                "maxContains": 1,
            },
            [[1], [1.0], [], [1, 2], ["a"]],
        ),
        # oneOf / not / if-then-else, a guarded recursive $ref.
        (
            {
                "$defs": {
                    "tree": {"type": "object", "properties": {"kids": {"items": {"$ref": "#/$defs/tree"}}}}
                },
                "oneOf": [{"$ref": "#/$defs/tree"}, {"type": "object", "required": ["x"]}],
                "not": {"required": ["bad"]},
                "if": {"required": ["k"]},
                "then": {"properties": {"k": {"format": "date"}}},
                "else": {"maxProperties": 3},
            },
            [{}, {"x": 1}, {"kids": [{"kids": [1]}]}, {"k": "2024-02-30"}, {"k": "2024-02-29"}, {"bad": 1}],
        ),
    ],
)
def test_hand_made(schema: dict, instances: list) -> None:
    """jsonschema details the suite does not pin down, at the root and below."""
    ctx = SchemaContext(schema, check_schema=False)
    root = ctx.root()
    assert compile_predicate(ctx, root) is not None
    for instance in instances:
        _compare(ctx, root, instance, "hand-made")
        _walk(ctx, root, instance, "hand-made")


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"a": {"$dynamicAnchor": "a"}}, "$dynamicRef": "#a"},
        {"unevaluatedProperties": False},
        {"allOf": [{"$ref": "#"}]},  # a cycle that never consumes the instance
        {"$ref": "http://example.com/unknown.json"},
        {"not": {"$id": "http://example.com/x", "type": "string"}},
        {"$schema": "http://json-schema.org/draft-03/schema#", "type": "any"},
        {"properties": {"a": {"$schema": "http://json-schema.org/draft-04/schema#"}}},
        {"additionalProperties": False, "patternProperties": {"\\p{L}": True}},
    ],
)
def test_falls_back(schema: dict) -> None:
    """What is not implemented exactly leaves the node to jsonschema."""
    ctx = SchemaContext(schema, check_schema=False)
    assert compile_predicate(ctx, ctx.root()) is None


@pytest.mark.parametrize("depth", [10, 300, 3000])
def test_deep_values(depth: int) -> None:
    """Past the nesting jsonschema can follow (RecursionError: False), is_valid still gives its answer."""
    schema = {"anyOf": [{"type": "array", "items": {"not": {"not": {"$ref": "#"}}}}, {"type": "null"}]}
    ctx = SchemaContext(schema)
    root = ctx.root()
    assert compile_predicate(ctx, root) is not None
    value = json.loads("[" * depth + "]" * depth)
    assert ctx.is_valid(root, value) == ctx.jsonschema_is_valid(root, value)


def test_is_valid_uses_the_predicate() -> None:
    """SchemaContext.is_valid answers with the cached predicate and falls back where it raises."""
    ctx = SchemaContext({"properties": {"a": {"type": "integer", "multipleOf": 0.5}}})
    root = ctx.root()
    assert ctx.is_valid(root, {"a": 3}) and not ctx.is_valid(root, {"a": 3.25})
    assert ctx._predicates[root.key] is compile_predicate(ctx, root)
    # A value the predicate does not model (an overflowing quotient of a huge integer) raises there;
    # is_valid then gives jsonschema's answer, here its exception.
    with pytest.raises(OverflowError):
        ctx.is_valid(root, {"a": 10**400})


# -- MaskBench schemas --------------------------------------------------------------------------------


def _bench_sample() -> list[tuple[str, dict]]:
    records = []
    for path in sorted(BENCH.glob("*.jsonl.gz")):
        group = path.name.removesuffix(".jsonl.gz")
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            lines = fh.readlines()
        picked = sorted(random.Random(group).sample(range(len(lines)), min(BENCH_SAMPLE, len(lines))))
        records.extend((group, json.loads(lines[i])) for i in picked)
    return records


def test_maskbench_sample() -> None:
    """Sampled MaskBench schemas: root and walked sub-nodes agree with jsonschema on every test instance."""
    if not BENCH.is_dir():
        pytest.skip(f"JSONSchemaBench not found at {BENCH}")
    roots = compiled = comparisons = 0
    uncovered = []
    for group, record in _bench_sample():
        try:
            ctx = SchemaContext(record["schema"], check_schema=False)
        except Exception:
            continue
        roots += 1
        root = ctx.root()
        if compile_predicate(ctx, root) is None:
            uncovered.append(record["id"])
        else:
            compiled += 1
        for case in record["tests"]:
            where = f"{group} {record['id']}"
            if _compare(ctx, root, case["data"], where) is not None:
                comparisons += 1
            comparisons += _walk(ctx, root, case["data"], where)
    coverage = compiled / roots
    print(f"MaskBench sample: {compiled}/{roots} roots compile ({coverage:.1%}), {comparisons} comparisons")
    print("not compiled:", ", ".join(uncovered))
    assert coverage >= BENCH_COVERAGE_FLOOR, uncovered
