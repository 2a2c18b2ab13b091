"""The Lark front end, ``compile_grammar`` and the shipped ``grammars`` package."""

from __future__ import annotations

import pytest

import grammars
from structgen.compilers.grammar import compile_grammar
from structgen.compilers.lark_frontend import lark_to_cfg, load_lark
from structgen.errors import GrammarError
from structgen.vocabulary import Vocabulary

VOCAB = Vocabulary.from_token_bytes([bytes([b]) for b in range(256)] + [None], [256], name="bytes")


def accepts(constraint, text: str) -> bool:
    a = constraint.automaton
    state = a.advance_bytes(a.initial_state(), text.encode())
    return state is not None and a.is_accepting(state)


def test_shipped_grammar_names_and_paths():
    assert set(grammars.names()) >= {"json", "sql", "python", "arithmetic", "csv", "lark"}
    for name in grammars.names():
        assert grammars.path(name).suffix == ".lark"
        assert grammars.load(name).strip()
    with pytest.raises(KeyError, match="no shipped grammar named 'nope'"):
        grammars.path("nope")
    with pytest.raises(KeyError):
        grammars.path("../pyproject")


@pytest.mark.parametrize("name", ["json", "sql", "python", "arithmetic", "csv", "lark"])
def test_every_shipped_grammar_compiles(name):
    constraint = compile_grammar(name, VOCAB)
    assert constraint.source == name
    assert constraint.automaton.grammar.name == name


def test_ebnf_templates_imports_and_ignore():
    text = r"""
    start: _list{item, ","} ";"?
    _list{x, sep}: x (sep x)*
    ?item: NUMBER | WORD | "[" [item ("," item)*] "]"
    %import common.NUMBER
    %import common.WORD
    %import common.WS
    %ignore WS
    """
    c = compile_grammar(text, VOCAB)
    assert accepts(c, "1, abc, [2, [x]] ;")
    assert accepts(c, "3.5e2")
    assert not accepts(c, "1,,2")
    assert not accepts(c, "[1")


def test_common_escaped_string_and_c_comment_are_rewritten_exactly():
    text = r"""
    start: ESCAPED_STRING+
    %import common.ESCAPED_STRING
    %import common.C_COMMENT
    %import common.WS
    %ignore WS
    %ignore C_COMMENT
    """
    c = compile_grammar(text, VOCAB)
    assert accepts(c, r'"a\"b" /* x * y **/ "c\\"')
    assert not accepts(c, r'"a\"')
    assert not accepts(c, '"a\nb"')
    assert not accepts(c, '"a" /* open')


def test_priorities_and_literal_precedence():
    # Lark: at equal priority the string literal beats a regexp matching the same text.
    lg = load_lark('start: KW | NAME\nKW: "if"\nNAME: /[a-z]+/')
    cfg = lg.cfg
    assert cfg.terminals["KW"].priority == 1 and cfg.terminals["NAME"].priority == 0
    assert lg.guards == {"NAME": frozenset({"KW"}), "KW": frozenset({"NAME"})}
    # A higher Lark priority on the regexp wins over the literal.
    lg = load_lark('start: KW | NAME\nKW: "if"\nNAME.2: /[a-z]+/')
    assert lg.cfg.terminals["NAME"].priority == 4 and "NAME" not in lg.guards


def test_case_insensitive_strings():
    c = compile_grammar('start: "select"i NAME\nNAME: /[a-z]+/\n%ignore " "', VOCAB)
    assert accepts(c, "SeLeCt abc") and accepts(c, "select x")
    assert not accepts(c, "select select")  # keywords are reserved


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("start: foo", "undefined|foo"),
        ("start: A\n%declare A", "'A'.*%declare"),
        ("start: A\nA: /a+?/", "terminal 'A': lazy quantifier"),
        ("start: A\nA: /(?<=a)b/", "terminal 'A'.*lookbehind"),
        ("start: A\nA: /a/s", "terminal 'A': regex flag"),
        ("start: A\nA: /\\p{L}/", "terminal 'A'"),
        ("start: A\nA: /a*/", "terminal 'A' matches the empty string"),
        ('start: a\na: a "x"', "start symbol 'start' derives no sentence"),
        ('x: "a"', "start rule 'start' is not defined"),
        ("start: (", "invalid Lark grammar"),
        ('start: "a"\n%ignore B', "B"),
    ],
)
def test_grammar_errors_name_the_rule_or_terminal(text, match):
    with pytest.raises(GrammarError, match=match):
        compile_grammar(text, VOCAB)


def test_start_rule_choice_and_non_string_input():
    c = compile_grammar('start: "a"\nother: "b"', VOCAB, start="other")
    assert accepts(c, "b") and not accepts(c, "a")
    with pytest.raises(GrammarError):
        compile_grammar(b"start: 'a'", VOCAB)  # type: ignore[arg-type]


def test_front_end_cache_returns_same_grammar():
    assert lark_to_cfg(grammars.load("json"), name="json") is lark_to_cfg(grammars.load("json"), name="json")
