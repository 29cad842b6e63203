"""The package version, in a leaf module.

Modules that need it (the CLI's ``--version``, the AWS user agent) import it from
here rather than from ``ssmsh``, whose ``__init__`` sits at the top of the import
graph (it re-exports the public API) and must not be imported from below.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
