"""The one thing pyproject.toml cannot say: the wheel's ``ssmsh/docs`` is ``docs/``.

``ssmsh help TOPIC`` reads the installed copy; the source tree keeps a single one,
``docs/`` (MANIFEST.in puts it in the sdist). Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DOCS = Path(__file__).resolve().parent / "docs"


class build_py_with_docs(build_py):
    """build_py, then ``docs/*.md`` copied into the built package as ``ssmsh/docs/``."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib, "ssmsh", "docs")
        target.mkdir(parents=True, exist_ok=True)
        for doc in sorted(DOCS.glob("*.md")):
            shutil.copyfile(doc, target / doc.name)


setup(cmdclass={"build_py": build_py_with_docs})
