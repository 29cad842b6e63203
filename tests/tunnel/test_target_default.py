"""``forward`` and ``proxy`` take TARGET optionally, as ``shell`` and ``exec`` do."""

from __future__ import annotations

import argparse

import pytest

from ssmsh.cli.forward import target_and_specs
from ssmsh.cli.main import build_parser
from ssmsh.cli.proxy import target_and_port
from ssmsh.emulator import DEFAULT_TARGET
from ssmsh.exceptions import UsageError


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


@pytest.fixture(autouse=True)
def _no_env_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSMSH_TARGET", raising=False)


def test_forward_target_then_specs() -> None:
    target, specs = target_and_specs(parse("forward", "i-0abc", "8080:80", "0:22"))
    assert target == "i-0abc"
    assert [s.remote_port for s in specs] == [80, 22]


def test_forward_local_without_target() -> None:
    target, specs = target_and_specs(parse("forward", "--local", "8080:80"))
    assert target == DEFAULT_TARGET
    assert [s.remote_port for s in specs] == [80]
    target, specs = target_and_specs(parse("forward", "--local", "8080:80", "127.0.0.1:0:22"))
    assert target == DEFAULT_TARGET
    assert [s.remote_port for s in specs] == [80, 22]


def test_forward_env_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSMSH_TARGET", "i-0fromenv")
    target, specs = target_and_specs(parse("forward", "5432:db.internal:5432"))
    assert target == "i-0fromenv"
    assert specs[0].remote_host == "db.internal"


def test_forward_without_target_or_default_says_so() -> None:
    with pytest.raises(UsageError, match="no target given"):
        target_and_specs(parse("forward", "8080:80"))


def test_forward_target_without_spec_says_so() -> None:
    with pytest.raises(UsageError, match="no SPEC given for target 'i-0abc'"):
        target_and_specs(parse("forward", "i-0abc"))
    with pytest.raises(UsageError, match="not a port number"):
        target_and_specs(parse("forward", "--local", "80:8x"))


def test_proxy_target_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    assert target_and_port(parse("proxy", "i-0abc", "2222")) == ("i-0abc", 2222)
    assert target_and_port(parse("proxy", "i-0abc")) == ("i-0abc", 22)
    assert target_and_port(parse("proxy", "--local")) == (DEFAULT_TARGET, 22)
    assert target_and_port(parse("proxy", "--local", "2222")) == (DEFAULT_TARGET, 2222)
    with pytest.raises(UsageError, match="no target given"):
        target_and_port(parse("proxy"))
    monkeypatch.setenv("SSMSH_TARGET", "i-0fromenv")
    assert target_and_port(parse("proxy", "2222")) == ("i-0fromenv", 2222)
    assert target_and_port(parse("proxy", "web", "2222")) == ("web", 2222)
