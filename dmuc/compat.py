"""
Make wokkel 18.0.0 (the last release, 2018) import on current Twisted.

wokkel's modules import two things Twisted has since removed:

  - C{twisted.python.compat._PY3} (gone since Twisted 21.2); wokkel only
    reads it to choose Python 3 code paths, so C{True} is correct.
  - C{twisted.python.constants} (moved to the C{constantly} package, which
    Twisted itself depends on).

This module must be imported before any wokkel module; C{dmuc/__init__.py}
does so.  C{tests/test_compat.py} fails when the shim stops being needed (a
fixed wokkel or an older Twisted) or stops being enough.
"""

import importlib
import sys

import constantly
from twisted.python import compat as twisted_compat


def install():
    """
    Patch the two missing names in.  Idempotent.

    @return: the names that had to be provided, for the test that checks the
        shim is still needed.
    """
    provided = []
    if not hasattr(twisted_compat, "_PY3"):
        twisted_compat._PY3 = True
        provided.append("twisted.python.compat._PY3")
    if "twisted.python.constants" not in sys.modules:
        try:
            importlib.import_module("twisted.python.constants")
        except ImportError:
            sys.modules["twisted.python.constants"] = constantly
            provided.append("twisted.python.constants")
    return provided


PROVIDED = install()
