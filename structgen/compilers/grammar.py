"""``compile_grammar``: Lark grammar text, or the name of a shipped grammar, to a :class:`Constraint`."""

from __future__ import annotations

import weakref
from collections import OrderedDict

import grammars
from structgen.automata.grammar import GrammarAutomaton
from structgen.compilers.lark_frontend import load_lark
from structgen.errors import GrammarError
from structgen.matcher import Constraint
from structgen.vocabulary import Vocabulary

# Compiled automata, shared by the constraints compiled from the same grammar for the same
# vocabulary: their states are immutable and their tables only grow, so sharing keeps the masks
# computed for one request warm for the next. Entries whose tables grew past _MAX_SHARED_SETS
# parser sets are replaced by a fresh automaton (bounding memory).
_AUTOMATA: OrderedDict[tuple[str, str, int], tuple[weakref.ref, GrammarAutomaton]] = OrderedDict()
_MAX_CACHED = 32
_MAX_SHARED_SETS = 200_000


def compile_grammar(
    grammar: str, vocab: Vocabulary, *, start: str = "start", cache: bool = True
) -> Constraint:
    """Compile a Lark grammar for ``vocab``.

    ``grammar`` is Lark grammar text, or the name of a grammar shipped in the ``grammars`` package
    (``grammars.names()``: ``"json"``, ``"sql"``, ``"python"``, ...). ``start`` names the start
    rule. Raises :class:`~structgen.errors.GrammarError` naming the offending rule or terminal.
    See :mod:`structgen.automata.grammar.engine` for what the constraint allows (greedy lexing,
    ``%ignore``, priorities) and :mod:`structgen.compilers.lark_frontend` for the Lark features
    supported. With ``cache`` (the default) constraints of the same grammar and vocabulary share
    one automaton, and with it the masks already computed.
    """
    if not isinstance(grammar, str):
        raise GrammarError(
            f"a grammar must be Lark text or a shipped grammar name, got {type(grammar).__name__}"
        )
    if grammar in grammars.names():
        name = grammar
        text = grammars.load(grammar)
    else:
        name = "grammar"
        text = grammar
    key = (text, start, id(vocab))
    entry = _AUTOMATA.get(key) if cache else None
    if entry is not None and entry[0]() is vocab and len(entry[1].parser.sets) <= _MAX_SHARED_SETS:
        _AUTOMATA.move_to_end(key)
        return Constraint(entry[1], source=grammar)
    lark = load_lark(text, start, name)
    automaton = GrammarAutomaton(lark.cfg, vocab, guards=lark.guards)
    if cache:
        _AUTOMATA[key] = (weakref.ref(vocab), automaton)
        if len(_AUTOMATA) > _MAX_CACHED:
            _AUTOMATA.popitem(last=False)
    return Constraint(automaton, source=grammar)
