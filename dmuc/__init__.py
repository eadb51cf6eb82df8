"""
dmuc: distributed multi-user chat for XMPP.

Importing the package installs the wokkel compatibility shim first, so every
module below may import wokkel freely.
"""

from dmuc import compat as _compat  # noqa: F401  (must run before wokkel)

__version__ = "0.1.0"
