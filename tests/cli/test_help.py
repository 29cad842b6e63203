"""``ssmsh help [TOPIC]`` (``ssmsh/cli/helpdocs.py``) and the docs the wheel ships
(``setup.py``: ``docs/`` becomes ``ssmsh/docs/``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ssmsh.cli import helpdocs
from ssmsh.cli.main import main

from .harness import PtyProcess

ROOT = Path(__file__).resolve().parents[2]
SETUP = [sys.executable, "setup.py", "-q"]
DOCS = sorted(p.name for p in (ROOT / "docs").glob("*.md"))


def test_the_built_package_has_every_doc_as_it_is(tmp_path: Path) -> None:
    # What a wheel holds is what build_py builds (checked by hand with pip wheel too).
    subprocess.run(
        # (egg_info's own files out of the source tree too)
        [*SETUP, "egg_info", "--egg-base", str(tmp_path), "build_py", "--build-lib", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    shipped = tmp_path / "ssmsh" / "docs"
    assert sorted(p.name for p in shipped.iterdir()) == DOCS
    for name in DOCS:
        assert (shipped / name).read_bytes() == (ROOT / "docs" / name).read_bytes()
    assert "docs" in (ROOT / "MANIFEST.in").read_text()  # and the sdist has them to copy


def test_topics_are_the_docs() -> None:
    assert [f"{name}.md" for name in helpdocs.topics()] == DOCS


def test_help_lists_the_topics(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["help"]) == 0
    out = capfd.readouterr().out
    assert "  tunnels        Tunnels: ssmsh forward, ssmsh socks and ssmsh proxy\n" in out
    assert "usage" in out


def test_a_topic_piped_is_the_doc_as_it_is(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["help", "aws-cli"]) == 0
    assert capfd.readouterr().out == (ROOT / "docs" / "aws-cli.md").read_text()


def test_a_command_is_its_help_and_an_unknown_topic_one_line(
    capfd: pytest.CaptureFixture[str],
) -> None:
    assert main(["help", "socks"]) == 0
    assert capfd.readouterr().out.startswith("usage: ssmsh socks")
    assert main(["help", "nope"]) == 2
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "ssmsh: no help topic 'nope' (topics: architecture, associations, automation, "
        "aws-cli, compatibility, cp, emulator, reliability, run, tunnels, usage)\n"
    )


def test_the_pager(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAGER", "most -s")
    assert helpdocs._pager() == "most -s"
    for none in ("", "cat"):
        monkeypatch.setenv("PAGER", none)
        assert helpdocs._pager() is None
    monkeypatch.delenv("PAGER")
    monkeypatch.setenv("PATH", str(tmp_path))  # neither less nor more: none
    assert helpdocs._pager() is None
    (tmp_path / "more").write_text("#!/bin/sh\n")
    (tmp_path / "more").chmod(0o755)
    assert helpdocs._pager() == "more"


async def test_on_a_terminal_it_goes_through_the_pager(tmp_path: Path) -> None:
    paged = tmp_path / "paged"
    proc = PtyProcess(["help", "run"], env={"PAGER": f"cat > {paged}; echo LESS=$LESS"})
    try:
        assert await proc.wait() == 0
        assert "LESS=FRX" in proc.text
        assert paged.read_text() == (ROOT / "docs" / "run.md").read_text()
    finally:
        proc.close()
