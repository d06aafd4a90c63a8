"""pyparsing grammars: the one definition of every line logpath reads.

Installed as ``logpath.grammars``; this package imports nothing from ``logpath``.
"""
