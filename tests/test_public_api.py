"""The public API re-exported from ``ssmsh``."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ssmsh


@pytest.mark.parametrize("name", ssmsh.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(ssmsh, name) is not None


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = ssmsh.NoSuchThing


def test_import_is_cheap() -> None:
    # `import ssmsh` must not pull in boto3, websockets or the emulator.
    code = (
        "import sys, ssmsh; "
        "print(sorted(m for m in ('boto3', 'websockets', 'ssmsh.emulator') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
