"""Reference recognizers for emitted grammars, independent of the token-level engine.

:class:`EarleyRecognizer` is a plain-Python Earley parser over characters in which a terminal may
cover any substring its regex matches in full (no lexer, so no lexing policy can hide a grammar bug);
it is slow (quadratic substring checks) and meant for short test strings. :func:`grammar_to_lark`
renders the IR as Lark text for inspection.
"""

from __future__ import annotations

import re

from structgen.automata.cfg import ContextFreeGrammar


def grammar_to_lark(grammar: ContextFreeGrammar) -> str:
    """Lark text equivalent to ``grammar`` (terminals as regexes, rules renamed to Lark conventions)."""
    term_names = {name: f"T{i}" for i, name in enumerate(grammar.terminals)}
    rule_names = {name: f"r{i}" for i, name in enumerate(sorted(grammar.nonterminals))}
    lines = []
    by_lhs: dict[str, list[tuple[str, ...]]] = {}
    for p in grammar.productions:
        by_lhs.setdefault(p.lhs, []).append(p.rhs)
    for lhs, alternatives in by_lhs.items():
        rendered = [" ".join(term_names.get(s) or rule_names[s] for s in rhs) for rhs in alternatives]
        lines.append(f"{rule_names[lhs]}: " + " | ".join(rendered))
    for name, term in grammar.terminals.items():
        pattern = re.escape(term.pattern) if term.is_literal else term.pattern
        slashed = pattern.replace("/", "\\/")
        lines.append(f"{term_names[name]}: /{slashed}/")
    lines.append(f"start_: {rule_names[grammar.start]}")
    return "\n".join(lines) + "\n"


class EarleyRecognizer:
    """``accepts(text)``: whether ``text`` is a sentence of the grammar (character-level Earley)."""

    def __init__(self, grammar: ContextFreeGrammar, terminal_dfas: dict | None = None) -> None:
        self.grammar = grammar
        # Terminals with a prebuilt byte DFA are matched with it (its language is the exact one).
        self.dfas = dict(terminal_dfas or {})
        self.rules: dict[str, list[tuple[str, ...]]] = {}
        for p in grammar.productions:
            self.rules.setdefault(p.lhs, []).append(p.rhs)
        self.regexes = {
            name: re.compile(re.escape(t.pattern) if t.is_literal else t.pattern, re.DOTALL)
            for name, t in grammar.terminals.items()
        }

    def accepts(self, text: str) -> bool:
        """Parse ``text`` in full."""
        n = len(text)
        sets: list[set[tuple[str, tuple[str, ...], int, int]]] = [set() for _ in range(n + 1)]
        spans: dict[tuple[str, int], list[int]] = {}
        start = ("$", (self.grammar.start,), 0, 0)
        sets[0].add(start)
        for k in range(n + 1):
            todo = list(sets[k])
            # Completions with an empty span can enable items added later at k: iterate to a fixpoint.
            changed = True
            while changed:
                changed = False
                todo = list(sets[k])
                for lhs, rhs, dot, origin in todo:
                    if dot == len(rhs):
                        for plhs, prhs, pdot, porigin in list(sets[origin]):
                            if pdot < len(prhs) and prhs[pdot] == lhs:
                                item = (plhs, prhs, pdot + 1, porigin)
                                if item not in sets[k]:
                                    sets[k].add(item)
                                    changed = True
                        continue
                    sym = rhs[dot]
                    if sym in self.rules:
                        for alt in self.rules[sym]:
                            item = (sym, alt, 0, k)
                            if item not in sets[k]:
                                sets[k].add(item)
                                changed = True
                    else:
                        key = (sym, k)
                        ends = spans.get(key)
                        if ends is None:
                            dfa = self.dfas.get(sym)
                            if dfa is not None:
                                ends = [j for j in range(k + 1, n + 1) if dfa.matches(text[k:j].encode())]
                            else:
                                rx = self.regexes[sym]
                                ends = [j for j in range(k + 1, n + 1) if rx.fullmatch(text, k, j)]
                            spans[key] = ends
                        for j in ends:
                            sets[j].add((lhs, rhs, dot + 1, origin))
        return ("$", (self.grammar.start,), 1, 0) in sets[n]
