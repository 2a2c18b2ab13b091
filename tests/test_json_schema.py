"""Unit tests of the JSON Schema compiler: regexes, DFAs, grammar emission, runtime checks, the API."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest

from structgen.automata.grammar import GrammarAutomaton
from structgen.automata.grammar.reference import subtree_walks_reference
from structgen.bitmask import bitmask_words
from structgen.compilers.json_schema import compile_json_schema, compile_json_schema_grammar
from structgen.compilers.json_schema.dfas import excluded_keys_dfa, json_string_dfa, length_string_dfa
from structgen.compilers.json_schema.ecma_regex import (
    PatternSyntaxError,
    UnsupportedPattern,
    compile_python,
    pattern_to_json_regex,
)
from structgen.compilers.json_schema.emitter import exclude_strings_regex
from structgen.compilers.json_schema.formats import FORMAT_PATTERNS, make_format_checker
from structgen.compilers.json_schema.numbers import integer_range
from structgen.compilers.json_schema.reference import EarleyRecognizer
from structgen.compilers.json_schema.runtime import INITIAL, inert_after_key
from structgen.errors import EmptyLanguageError, ResourceLimitError, SchemaError

# --- numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi"),
    [
        (0, None),
        (None, 0),
        (None, None),
        (-5, 5),
        (1, 100),
        (17, 23456),
        (-1000, -17),
        (None, -3),
        (123, None),
        (0, 0),
        (99, 1000),
        (-7, 0),
    ],
)
def test_integer_range_is_exact(lo, hi):
    rx = re.compile(integer_range(lo, hi))
    rng = random.Random(0)
    values = list(range(-2000, 2000)) + [rng.randint(-(10**7), 10**7) for _ in range(500)]
    for v in values:
        expected = (lo is None or v >= lo) and (hi is None or v <= hi)
        assert (rx.fullmatch(str(v)) is not None) == expected, v
        assert (rx.fullmatch(f"{v}.0") is not None) == expected
    assert rx.fullmatch("01") is None and rx.fullmatch("1e3") is None


# --- ECMA regexes --------------------------------------------------------------------------------

_ALPHABET = ["a", "b", "c", "1", "-", " ", '"', "\\", "\n", "é", "😀", "A", "_"]


@pytest.mark.parametrize(
    "pattern",
    [
        "^a",
        "a$",
        "^a*b$",
        "ab|^c",
        "[a-c]+1",
        "^[^a]{2,3}$",
        "\\d\\w",
        "^(a|b)*$",
        "é",
        "^\\p{L}+$",
        "😀",
        "^.$",
        "\\s",
        "[\\-a]",
        "^\\u0061$",
        "a{2}",
        "^(?:ab)?c$",
    ],
)
def test_pattern_regex_matches_search_semantics(pattern):
    """The JSON-encoded regex accepts exactly the encodings of strings the pattern finds a match in."""
    encoded = re.compile(pattern_to_json_regex(pattern))
    ecma = compile_python(pattern)
    rng = random.Random(pattern)
    for _ in range(400):
        s = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 5)))
        body = json.dumps(s, ensure_ascii=False)[1:-1]
        assert (encoded.fullmatch(body) is not None) == (ecma.search(s) is not None), (pattern, s)


def test_ecma_semantics_differ_from_python_where_they_should():
    assert compile_python("^a$").search("a\n") is None  # Python's $ would match before a final newline
    assert compile_python("\\d").search("٣") is None  # ECMA \d is ASCII only


@pytest.mark.parametrize("pattern", ["(a)\\1", "(?=a)", "\\bword"])
def test_unsupported_patterns_are_reported(pattern):
    with pytest.raises(UnsupportedPattern):
        pattern_to_json_regex(pattern)


def test_invalid_pattern_is_a_syntax_error():
    with pytest.raises(PatternSyntaxError):
        pattern_to_json_regex("a(b")


def test_format_regexes_match_their_checkers():
    checker = make_format_checker()
    samples = {
        "date-time": (
            ["2024-01-31T12:00:00Z", "2024-01-31t12:00:00.5+01:00"],
            ["2024-01-31 12:00", "2024-13-01T00:00:00Z"],
        ),
        "date": (
            ["2020-02-29", "2000-02-29", "2023-04-30", "2023-12-31"],
            ["2020-2-29", "2020-02-32", "2023-02-29", "1900-02-29", "2024-02-30", "2023-04-31", "0000-01-01"],
        ),
        "time": (["23:59:60Z"], ["24:00:00Z"]),
        "duration": (["P1Y2M", "PT1H", "P2W"], ["P", "PT", "P1H"]),
        "email": (["a.b@example.com"], ["a@", "@b.c", "a b@c.d"]),
        "hostname": (["example.com", "a-b.c"], ["-a.com", "a..b"]),
        "ipv4": (["192.168.0.1"], ["256.1.1.1", "1.2.3"]),
        "ipv6": (["::1", "2001:db8::8a2e:370:7334", "::ffff:1.2.3.4"], ["1:2:3", ":::"]),
        "uuid": (["123e4567-e89b-12d3-a456-426614174000"], ["123e4567e89b12d3a456426614174000"]),
        "uri": (
            ["https://x.org/a?b#c", "mailto:a@b.c", "urn:isbn:0451450523", "http://[::1]:8080/"],
            ["no scheme", "//x.org", "http://a b", "http://x/%zz"],
        ),
        "uri-reference": (["../a/b", "//x.org/p", "#frag", "", "a/b:c", "?q=1"], ["://", "a:b c", "%g0"]),
    }
    for fmt, (good, bad) in samples.items():
        rx = re.compile(pattern_to_json_regex(FORMAT_PATTERNS[fmt]))
        for s in good:
            assert checker.conforms(s, fmt) and rx.fullmatch(json.dumps(s)[1:-1]), (fmt, s)
        for s in bad:
            assert not checker.conforms(s, fmt) and not rx.fullmatch(json.dumps(s)[1:-1]), (fmt, s)


# --- direct DFAs ----------------------------------------------------------------------------------


def test_excluded_keys_dfa_equals_its_regex():
    words = ["foo", "fo", "bar", 'a"b', "é", "x\ny"]
    dfa = excluded_keys_dfa(tuple(sorted(words)))
    rx = re.compile('"' + exclude_strings_regex(words) + '"')
    rng = random.Random(1)
    candidates = [*words, "", "f", "fooo", "ba", "ée", "a", "x"]
    candidates += ["".join(rng.choice('fobarxé\n"') for _ in range(rng.randint(0, 4))) for _ in range(300)]
    for w in candidates:
        text = json.dumps(w, ensure_ascii=False)
        assert dfa.matches(text.encode()) == (w not in words) == (rx.fullmatch(text) is not None), w


@pytest.mark.parametrize(("lo", "hi"), [(0, 0), (2, 5), (3, None), (0, 1)])
def test_length_string_dfa_counts_code_points(lo, hi):
    dfa = length_string_dfa(lo, hi)
    for w in ["", "a", "ab", "é😀", "abcde", "abcdef", "\x01\n", 'a"b\\']:
        expected = len(w) >= lo and (hi is None or len(w) <= hi)
        assert dfa.matches(json.dumps(w, ensure_ascii=False).encode()) == expected, w


# --- grammar emission against the reference recognizer ----------------------------------------------

REFERENCE_CASES = [
    (
        {
            "type": "object",
            "properties": {"a": {"type": "integer", "minimum": 3}, "b": {"type": "string", "maxLength": 3}},
            "required": ["a"],
            "additionalProperties": False,
        },
        [{"a": 3}, {"a": 4, "b": "xyz"}],
        [{"a": 2}, {"b": "x"}, {"a": 3, "b": "long"}, {"a": 3, "c": 1}, {"a": 3.5}],
    ),
    (
        {
            "type": "array",
            "prefixItems": [{"type": "boolean"}, {"enum": ["x", 1]}],
            "items": {"type": "null"},
            "minItems": 1,
            "maxItems": 4,
        },
        [[True], [False, "x"], [True, 1, None, None]],
        [[], [1], [True, "y"], [True, 1, None, None, None], [True, 1, 2]],
    ),
    (
        {
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {"v": {"type": "integer"}, "next": {"$ref": "#/$defs/node"}},
                    "required": ["v"],
                    "additionalProperties": False,
                }
            },
            "$ref": "#/$defs/node",
        },
        [{"v": 1}, {"v": 1, "next": {"v": 2, "next": {"v": 3}}}],
        [{"v": 1, "next": {}}, {"next": {"v": 1}}],
    ),
    (
        {"anyOf": [{"type": "string", "pattern": "^[a-z]+$"}, {"type": "number", "minimum": 0}]},
        ["abc", 0, 2.5],
        ["ABC", -1, None],
    ),
    (
        {"type": "object", "patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": False},
        [{}, {"x-a": 1}],
        [{"y": 1}, {"x-a": "s"}],
    ),
]


@pytest.mark.parametrize(("schema", "valid", "invalid"), REFERENCE_CASES)
def test_grammar_and_checks_with_reference_recognizer(schema, valid, invalid):
    compiled = compile_json_schema_grammar(schema)
    recognizer = compiled.recognizer()

    def accepted(instance) -> bool:
        for indent in (None, 2):
            text = json.dumps(instance, indent=indent, separators=(",", ":") if indent is None else None)
            if not recognizer.accepts(text):
                return False
            if compiled.checker is not None:
                tracker = compiled.tracker()
                state = tracker.feed(INITIAL, text.encode())
                if state is None or not tracker.finish(state):
                    return False
        return True

    for instance in valid:
        assert compiled.is_valid(instance)
        assert accepted(instance), instance
    for instance in invalid:
        assert not accepted(instance), instance


def test_conjoined_object_members_are_exact():
    # additionalProperties of one conjunct applies to the properties of the others: merged exactly,
    # so no runtime check is left and the grammar alone accepts exactly the valid documents.
    closed = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"a": {"type": "integer"}},
        "anyOf": [
            {"properties": {"a": {"minimum": 3}, "b": {"type": "string"}}},
            {"additionalProperties": {"type": "integer", "maximum": 1}},
        ],
    }
    compiled = compile_json_schema_grammar(closed)
    assert compiled.checker is None
    recognizer = compiled.recognizer()
    for text, valid in [
        ("{}", True),
        ('{"a":3}', True),
        ('{"a":1}', True),
        ('{"a":2}', False),
        ('{"b":"x"}', False),
        ('{"a":"x"}', False),
    ]:
        assert recognizer.accepts(text) is valid, text
        assert compiled.is_valid(json.loads(text)) is valid, text


def test_boolean_subschema_inside_an_embedded_draft4_resource():
    # A real-world pattern (JSON Schema Store): referencing's crawler fails on it, jsonschema does not.
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema",
        "properties": {
            "a": {"$schema": "http://json-schema.org/draft-04/schema#", "properties": {"b": True}}
        },
    }
    recognizer = compile_json_schema_grammar(schema).recognizer()
    assert recognizer.accepts('{"a":{"b":[1]}}')
    assert not recognizer.accepts('{"a":1')


def test_draft4_integers_have_no_fraction():
    # Draft 4 says 1.0 is not an integer; 2020-12 says it is. The grammar follows the declared draft.
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"}
    assert not compile_json_schema_grammar(draft4).recognizer().accepts("1.0")
    assert compile_json_schema_grammar(draft4).recognizer().accepts("1")
    assert compile_json_schema_grammar({"type": "integer"}).recognizer().accepts("1.0")


@pytest.mark.parametrize(
    ("schema", "valid", "dead_prefixes"),
    [
        # The prefix is dead as soon as the string is longer than maxLength: no closing quote can
        # follow, so the mask must not let a model write on (it would loop until the token limit).
        (
            {"type": "string", "pattern": "^[a-zA-Z0-9_.]+$", "maxLength": 12},
            ['"example_key"', '"a.b"'],
            ['"abcdefghijklm', '"a!'],
        ),
        ({"type": "string", "format": "email", "maxLength": 10}, ['"a@b.co"'], ['"abcdef@b.co']),
        ({"type": "string", "format": "date", "pattern": "^2024"}, ['"2024-02-29"'], ['"2023']),
        ({"type": "string", "pattern": "é", "minLength": 2, "maxLength": 2}, ['"éa"', '"aé"'], ['"abc']),
    ],
)
def test_combined_string_keywords_are_exact(smollm2_vocab, schema, valid, dead_prefixes):
    compiled = compile_json_schema_grammar(schema)
    assert compiled.exact
    recognizer = compiled.recognizer()
    automaton = compile_json_schema(schema, smollm2_vocab).automaton
    for text in valid:
        assert recognizer.accepts(text), text
        assert compiled.is_valid(json.loads(text))
        assert automaton.is_accepting(automaton.advance_bytes(automaton.initial_state(), text.encode()))
    for prefix in dead_prefixes:
        assert automaton.advance_bytes(automaton.initial_state(), prefix.encode()) is None, prefix


def test_combined_string_keywords_without_a_common_string_are_empty():
    with pytest.raises(EmptyLanguageError):
        compile_json_schema_grammar({"type": "string", "pattern": "^a+$", "maxLength": 0})


def test_exactness_is_recorded():
    assert compile_json_schema_grammar({"type": "object", "properties": {"a": {"type": "string"}}}).exact
    assert compile_json_schema_grammar({"enum": [1, "a", [1, 2], {"k": None}]}).exact
    assert not compile_json_schema_grammar({"type": "array", "uniqueItems": True}).exact
    assert not compile_json_schema_grammar({"type": "number", "multipleOf": 0.5}).exact
    assert not compile_json_schema_grammar({"not": {"const": 1}}).exact
    assert compile_json_schema_grammar({"not": {"type": "null"}}).exact


# --- API: inputs, options, errors -------------------------------------------------------------------


def test_schema_inputs_and_errors():
    assert compile_json_schema_grammar('{"type": "integer"}').exact
    with pytest.raises(SchemaError, match="not valid JSON"):
        compile_json_schema_grammar("{nope")
    with pytest.raises(SchemaError, match="/properties/a/type"):
        compile_json_schema_grammar({"properties": {"a": {"type": "integr"}}})
    with pytest.raises(SchemaError, match="cannot resolve"):
        compile_json_schema_grammar({"$ref": "#/$defs/missing"})
    with pytest.raises(EmptyLanguageError):
        compile_json_schema_grammar(False)
    with pytest.raises(EmptyLanguageError):
        compile_json_schema_grammar({"type": "integer", "minimum": 5, "maximum": 4})
    with pytest.raises(EmptyLanguageError):
        compile_json_schema_grammar({"type": "object", "properties": {"a": False}, "required": ["a"]})
    with pytest.raises(ResourceLimitError):
        compile_json_schema_grammar(
            {"type": "array", "items": {"enum": list(range(2000))}, "maxItems": 60}, max_rules=1000
        )


def test_pydantic_model_input():
    pydantic = pytest.importorskip("pydantic")

    class Point(pydantic.BaseModel):
        x: int
        y: int = 0
        label: str | None = None

    compiled = compile_json_schema_grammar(Point)
    rec = compiled.recognizer()
    assert rec.accepts('{"x":1,"y":2,"label":null}')
    assert rec.accepts('{"x": 1}')
    assert not rec.accepts('{"y": 1}')


def test_strict_closes_objects_and_compact_whitespace():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    loose = compile_json_schema_grammar(schema).recognizer()
    strict = EarleyRecognizer(compile_json_schema_grammar(schema, strict=True).grammar)
    compact = EarleyRecognizer(compile_json_schema_grammar(schema, whitespace="compact").grammar)
    assert loose.accepts('{"a": 1, "b": 2}') and not strict.accepts('{"a": 1, "b": 2}')
    assert strict.accepts('{"a": 1}')
    assert compact.accepts('{"a":1}') and not compact.accepts('{"a": 1}')
    bounded = EarleyRecognizer(compile_json_schema_grammar(schema, max_whitespace=4).grammar)
    assert bounded.accepts('{    "a":1}') and not bounded.accepts('{     "a":1}')


def test_property_order():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    }
    definition = compile_json_schema_grammar(schema, property_order="definition").recognizer()
    assert definition.accepts('{"a":1,"b":2}') and not definition.accepts('{"b":2,"a":1}')
    assert compile_json_schema_grammar(schema).recognizer().accepts('{"b":2,"a":1}')  # "flexible"
    compiled = compile_json_schema_grammar(schema, property_order="any")
    assert not compiled.exact
    rec = compiled.recognizer()
    assert rec.accepts('{"b":2,"a":1}')
    tracker = compiled.tracker()
    assert tracker.finish(tracker.feed(INITIAL, b'{"b":2,"a":1}'))
    assert tracker.feed(INITIAL, b'{"b":2}') is None  # required "a" missing: refused at the brace
    assert tracker.feed(INITIAL, b'{"a":2,"a":1') is None  # duplicate key


def test_additional_keys_interleave_but_listed_keys_keep_their_order():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}}
    rec = compile_json_schema_grammar(schema).recognizer()
    assert rec.accepts('{"x":1,"a":1,"y":[],"b":"s","z":null}')
    assert not rec.accepts('{"a":"not an int"}')
    assert not rec.accepts('{"a":1,"a":2}')


def test_formats_assert_or_annotate():
    schema = {"type": "string", "format": "date"}
    asserted = compile_json_schema_grammar(schema).recognizer()
    annotated = EarleyRecognizer(compile_json_schema_grammar(schema, formats="annotate").grammar)
    assert asserted.accepts('"2024-05-06"') and not asserted.accepts('"May 6"')
    assert annotated.accepts('"May 6"')


# --- token level ---------------------------------------------------------------------------------------


def _walk(constraint, tokenizer, text: str) -> bool:
    matcher = constraint.matcher()
    for token_id in tokenizer.encode(text, add_special_tokens=False):
        if not matcher.accepts(token_id):
            return False
        matcher.advance(token_id)
    return matcher.is_accepting()


def test_token_level_runtime_checks(smollm2_vocab, smollm2_tokenizer):
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "n": {"type": "number", "multipleOf": 0.25, "exclusiveMaximum": 10},
        },
        "required": ["n"],
    }
    constraint = compile_json_schema(schema, smollm2_vocab)
    assert _walk(constraint, smollm2_tokenizer, '{"tags":["a","b"],"n":2.75}')
    assert not _walk(constraint, smollm2_tokenizer, '{"tags":["a","a"],"n":2.75}')
    assert not _walk(constraint, smollm2_tokenizer, '{"n":2.7}')
    assert not _walk(constraint, smollm2_tokenizer, '{"n":10}')


def test_masks_generate_only_valid_documents(smollm2_vocab):
    """Random walks over the masks end in valid documents (the masks never lead outside the language)."""
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 0, "maximum": 99},
            "kind": {"enum": ["a", "b"]},
            "tags": {
                "type": "array",
                "items": {"type": "string", "maxLength": 3},
                "maxItems": 2,
                "uniqueItems": True,
            },
        },
        "required": ["id", "kind"],
        "additionalProperties": False,
    }
    constraint = compile_json_schema(schema, smollm2_vocab, whitespace="compact")
    compiled = compile_json_schema_grammar(schema, whitespace="compact")
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(6):
        matcher = constraint.matcher()
        ids: list[int] = []
        for _step in range(80):
            if matcher.is_accepting() and (
                rng.random() < 0.5 or not matcher._automaton.can_continue(matcher.state)
            ):
                break
            mask = matcher.mask()
            allowed = [t for t in np.flatnonzero(mask) if t not in smollm2_vocab.eos_token_ids]
            assert allowed, "dead end: no token allowed in a non-final state"
            # Prefer short tokens so that walks finish within the step budget.
            weights = np.array([1.0 / len(smollm2_vocab.token_bytes[t]) ** 4 for t in allowed])
            token = int(rng.choice(allowed, p=weights / weights.sum()))
            matcher.advance(token)
            ids.append(token)
        if matcher.is_accepting():
            finished += 1
            assert compiled.is_valid(json.loads(smollm2_vocab.decode(ids)))
    assert finished >= 3


def test_runtime_checks_refuse_at_the_completing_token(smollm2_vocab, smollm2_tokenizer):
    schema = {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}
    constraint = compile_json_schema(schema, smollm2_vocab, whitespace="compact")
    matcher = constraint.matcher()
    for t in smollm2_tokenizer.encode("[1,2", add_special_tokens=False):
        matcher.advance(t)
    mask = matcher.mask()
    close = smollm2_tokenizer.encode("]", add_special_tokens=False)[0]
    assert mask[close]
    matcher2 = constraint.matcher()
    for t in smollm2_tokenizer.encode("[1,1", add_special_tokens=False):
        matcher2.advance(t)
    assert not matcher2.mask()[close]
    assert not matcher2.accepts(close)


def test_flexible_property_order_is_exact_for_small_objects():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "null"}},
        "required": ["a", "b"],
    }
    compiled = compile_json_schema_grammar(schema, property_order="flexible")
    assert compiled.exact
    rec = compiled.recognizer()
    assert rec.accepts('{"b":"x","a":1}') and rec.accepts('{"c":null,"z":[],"b":"x","a":1}')
    assert not rec.accepts('{"b":"x"}') and not rec.accepts('{"a":1,"a":2,"b":"x"}')
    big = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(8)}}
    rec = EarleyRecognizer(compile_json_schema_grammar(big, property_order="flexible").grammar)
    assert rec.accepts('{"p0":1,"p7":2}') and not rec.accepts('{"p7":2,"p0":1}')


def test_pattern_properties_with_open_objects_are_exact():
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "patternProperties": {"^x-": {"type": "integer"}, "^[0-9]+$": {"type": "boolean"}},
    }
    compiled = compile_json_schema_grammar(schema)
    assert compiled.exact
    rec = compiled.recognizer()
    assert rec.accepts('{"name":"a","x-1":2,"12":true,"other":[]}')
    assert not rec.accepts('{"x-1":"s"}') and not rec.accepts('{"7":1}')
    overlapping = {"patternProperties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}
    assert not compile_json_schema_grammar(overlapping).exact


def test_hostile_schemas_fail_cleanly():
    deep: dict = {"type": "integer"}
    for _ in range(3000):
        deep = {"type": "array", "items": deep}
    with pytest.raises(ResourceLimitError):
        compile_json_schema_grammar(deep)
    wide = {"type": "object", "properties": {f"p{i}": {"enum": list(range(50))} for i in range(400)}}
    with pytest.raises(ResourceLimitError):
        compile_json_schema_grammar(wide, max_rules=5000)


def test_inert_after_key():
    for rest in (b"", b":", b": ", b':"', b':"ab', b":{", b':{"', b":[", b":[{", b":tr", b":12"):
        assert inert_after_key(rest), rest
    for rest in (b':""', b":{}", b":[]", b":1,", b":true ", b':{"a"', b"}", b":[1]"):
        assert not inert_after_key(rest), rest


def _replayed_mask(automaton, state) -> np.ndarray:
    """The JSON Schema automaton's mask by replaying every grammar-allowed token (no shortcut)."""
    gstate, tstate = state
    words = np.zeros(bitmask_words(automaton.vocab.size), dtype=np.int32)
    automaton.grammar.fill_token_bitmask(gstate, words)
    bits = np.unpackbits(words.view(np.uint8), bitorder="little")[: automaton.vocab.size].astype(bool)
    for token_id in np.flatnonzero(bits):
        bits[token_id] = automaton.tracker.admits(tstate, automaton.vocab.token_bytes[token_id])
    return bits


@pytest.mark.parametrize(
    ("schema", "text"),
    [
        # Open object: other keys may repeat a written one, which the tracker refuses.
        ({"type": "object", "properties": {"a": {"multipleOf": 0.3}}}, '{"alpha":1,"al'),
        ({"type": "object", "additionalProperties": {"uniqueItems": True}}, '{"k\\n":1,"k\\t'),
        # Keys checked one by one (propertyNames): no shortcut, same masks.
        ({"type": "object", "propertyNames": {"maxLength": 3}, "minProperties": 1}, '{"ab":1,"a'),
    ],
)
def test_key_masks_equal_a_full_replay(smollm2_vocab, schema, text):
    constraint = compile_json_schema(schema, smollm2_vocab, whitespace="compact")
    automaton = constraint.automaton
    assert automaton.tracker.checker.keys_unrestricted(()) == ("propertyNames" not in schema)
    data = text.encode()
    for cut in range(len(data) + 1):
        state = automaton.initial_state()
        for byte in data[:cut]:
            state = (
                automaton.grammar.advance_bytes(state[0], bytes([byte])),
                automaton.tracker.feed(state[1], bytes([byte])),
            )
        words = np.zeros(bitmask_words(smollm2_vocab.size), dtype=np.int32)
        automaton.fill_token_bitmask(state, words)
        got = np.unpackbits(words.view(np.uint8), bitorder="little")[: smollm2_vocab.size].astype(bool)
        assert np.array_equal(got, _replayed_mask(automaton, state)), text[:cut]


def test_checks_skip_plain_containers_and_unreachable_length_bounds(smollm2_vocab, smollm2_tokenizer):
    long_text = {"type": "string", "maxLength": 1100}  # beyond what the grammar unrolls
    schema = {"type": "object", "properties": {"d": long_text, "n": {"type": "integer"}}, "required": ["d"]}
    constraint = compile_json_schema(schema, smollm2_vocab, whitespace="compact")
    checker = constraint.automaton.tracker.checker
    assert checker.needs_check(("d",)) and checker.length_bound(("d",)) == 1100
    assert not checker.needs_check(())  # a plain object: its members are checked as they complete
    assert _walk(
        constraint,
        smollm2_tokenizer,
        json.dumps({"d": "é" * 1100, "n": 1}, ensure_ascii=False, separators=(",", ":")),
    )
    assert not _walk(constraint, smollm2_tokenizer, json.dumps({"d": "a" * 1101}, separators=(",", ":")))
    # Containers judged as a whole, or reached through branches, keep their own checks.
    for whole in (
        {"type": "object", "properties": {"d": long_text}, "minProperties": 1, "maxProperties": 1},
        {"anyOf": [{"properties": {"d": long_text}}, {"properties": {"d": {"type": "integer"}}}]},
    ):
        checker = compile_json_schema(whole, smollm2_vocab).automaton.tracker.checker
        assert checker.needs_check(())
    nested = {"anyOf": [{"properties": {"o": {"properties": {"d": long_text}}}}, {"type": "array"}]}
    checker = compile_json_schema(nested, smollm2_vocab).automaton.tracker.checker
    assert checker.needs_check(("o",)) and checker.length_bound(("o", "d")) is None


def test_shared_string_walks_give_the_same_masks(smollm2_vocab):
    # Key and string terminals share their walks past what makes them special: the masks are
    # those of automata that walk everything themselves, with the numba kernel and its reference.
    schema = {
        "type": "object",
        "properties": {"alpha": {"type": "string"}, "beta": {"type": "string", "maxLength": 3}},
        "additionalProperties": {"type": "string"},
    }
    compiled = compile_json_schema_grammar(schema, whitespace="compact")
    grammar, dfas = compiled.grammar, compiled.emitted.terminal_dfas
    shared = {
        name: json_string_dfa()
        for name, terminal in grammar.terminals.items()
        if not terminal.is_literal and terminal.pattern.startswith('"')
    }
    plain = GrammarAutomaton(grammar, smollm2_vocab, terminal_dfas=dfas)
    fast = GrammarAutomaton(grammar, smollm2_vocab, terminal_dfas=dfas, shared_dfas=shared)
    slow = GrammarAutomaton(grammar, smollm2_vocab, terminal_dfas=dfas, shared_dfas=shared)
    slow._subtree_kernel = subtree_walks_reference
    assert (fast._class_of >= 0).any() and (fast._shared_final >= 0).any()
    fast.min_shared_subtree = slow.min_shared_subtree = 4
    text = b'{"alpha":"xyz","gamma":"some text, \\u00e9 \\"q\\"","beta":"ab","alphabet":"z"}'
    for cut in range(0, len(text) + 1, 3):
        masks = []
        for automaton in (plain, fast, slow):
            state = automaton.advance_bytes(automaton.initial_state(), text[:cut])
            masks.append(automaton.token_mask_words(state))
        assert np.array_equal(masks[0], masks[1]) and np.array_equal(masks[0], masks[2]), text[:cut]
    assert fast.shared_subtrees.num_entries > 0
