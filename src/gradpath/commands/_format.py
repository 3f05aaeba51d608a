"""Kept only so that existing ``gradpath.commands._format`` imports work: the helpers live in
:mod:`gradpath.formatting` (a leaf module that the library layers may import too)."""
from gradpath.formatting import fmt_num, table

__all__ = ["fmt_num", "table"]
