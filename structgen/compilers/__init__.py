"""Compilers: regex, Lark grammars and JSON Schema to constraints."""
