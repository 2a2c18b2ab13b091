"""Automata: byte-level DFAs, the token index, and the context-free grammar engine."""
