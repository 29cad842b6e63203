"""The config file (``ssmsh/cli/config.py``): parsing, its errors, and which setting wins
(``ssmsh/cli/common.py``: ``default_target``, ``aws_settings``, ``setting``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from ssmsh.cli.common import aws_settings, default_target, setting
from ssmsh.cli.config import HostConfig, config_path, load_config, parse_config
from ssmsh.cli.errors import EXIT_USAGE, ConfigError, NoTargetGiven, describe, exit_status
from ssmsh.cli.main import build_parser

CONFIG = b"""\
[defaults]
profile = "dev"
region = "us-east-1"
user = "admin"

[hosts.web]
target = "Env=prod,Role=web"
profile = "prod"
region = "eu-west-1"
user = "ec2-user"
document = "Prod-Shell"

[hosts."web-2"]
endpoint-url = "http://127.0.0.1:9"
"""

AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SSM",
    "SSMSH_TARGET",
)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.toml"
    path.write_bytes(CONFIG)
    monkeypatch.setenv("SSMSH_CONFIG", str(path))
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return path


def parse(*argv: str) -> argparse.Namespace:
    return build_parser(list(argv)).parse_args(list(argv))


def test_hosts_and_defaults_are_read() -> None:
    config = parse_config(CONFIG)
    assert config.defaults == HostConfig(profile="dev", region="us-east-1", user="admin")
    web = config.hosts["web"]
    assert (web.target, web.profile, web.region, web.user, web.document) == (
        "Env=prod,Role=web",
        "prod",
        "eu-west-1",
        "ec2-user",
        "Prod-Shell",
    )
    # without a target, the alias names the instance itself (a Name tag...)
    assert config.hosts["web-2"].target == "web-2"
    assert config.hosts["web-2"].endpoint_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'[hosts.web]\ntarget = "x"\nusr = "bob"\n', "line 3: hosts.web.usr: unknown key"),
        (b'[hosts.web]\nuser = ["a"]\n', "line 2: hosts.web.user: must be a string, not an array"),
        (
            b"\n[hosts.web]\nregion = 3\n",
            "line 3: hosts.web.region: must be a string, not a number",
        ),
        (b'[hosts.web]\nregion = ""\n', "line 2: hosts.web.region: is empty"),
        (b"\n\n[hosts.web\n", "line 3: "),
        (b"[host.web]\n", "line 1: host: unknown table"),
        (b'[hosts."a b"]\n', "line 1: hosts.a b: an alias is letters"),
        (b"[hosts.80]\n", "line 1: hosts.80: an alias is letters"),
        (b"hosts = 1\n", "line 1: hosts: must be a table"),
        (
            b"[defaults]\nprofile = true\n",
            "line 2: defaults.profile: must be a string, not a boolean",
        ),
        (b"[hosts]\nweb.target = 1\n", "line 2: hosts.web.target: must be a string"),
        (b'\xff = "x"\n', "line 1: not UTF-8"),
    ],
)
def test_mistakes_are_one_line_naming_the_file_and_line(text: bytes, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "/etc/x/config.toml")
    line = describe(raised.value)
    assert line.startswith(f"/etc/x/config.toml: {message}"), line
    assert "\n" not in line
    assert exit_status(raised.value) == EXIT_USAGE == 2


def test_the_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SSMSH_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_path() == (str(tmp_path / "ssmsh" / "config.toml"), False)
    assert load_config().hosts == {}  # missing: fine
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config_path()[0] == str(tmp_path / ".config" / "ssmsh" / "config.toml")
    monkeypatch.setenv("SSMSH_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="no such file"):
        load_config()  # named, so it must be there


def test_a_changed_file_is_read_again(config: Path) -> None:
    assert "web" in load_config().hosts
    config.write_bytes(b"[hosts.db]\n")
    os.utime(config, ns=(0, 1))
    assert list(load_config().hosts) == ["db"]


def test_an_alias_brings_its_target_and_settings(config: Path) -> None:
    args = parse("shell", "web")
    assert default_target(args, args.target) == "Env=prod,Role=web"
    assert (args.profile, args.region) == ("prod", "eu-west-1")
    assert setting(args, "user") == "ec2-user"
    assert setting(args, "document") == "Prod-Shell"
    settings = aws_settings(args)
    assert (settings.profile, settings.region) == ("prod", "eu-west-1")
    # applied once: its own result again is left as it is
    assert default_target(args, "Env=prod,Role=web") == "Env=prod,Role=web"


def test_the_command_line_beats_the_alias(config: Path) -> None:
    args = parse("--region", "ap-south-1", "shell", "--profile", "ops", "web")
    default_target(args, args.target)
    settings = aws_settings(args)
    assert (settings.profile, settings.region) == ("ops", "ap-south-1")


def test_the_alias_beats_the_environment(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "env-profile")
    monkeypatch.setenv("AWS_REGION", "ca-central-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    args = parse("status", "web")
    default_target(args, "web")
    settings = aws_settings(args)
    assert (settings.profile, settings.region, settings.endpoint_url) == (
        "prod",
        "eu-west-1",
        None,  # the alias sets none: botocore reads AWS_ENDPOINT_URL itself
    )


def test_the_environment_beats_defaults(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse("ls")
    settings = aws_settings(args)
    assert (settings.profile, settings.region) == ("dev", "us-east-1")  # [defaults]
    monkeypatch.setenv("AWS_PROFILE", "env-profile")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "sa-east-1")
    settings = aws_settings(args)
    assert (settings.profile, settings.region) == (None, None)  # botocore reads them
    monkeypatch.setenv("AWS_REGION", "ca-central-1")  # botocore does not read this one
    assert aws_settings(args).region == "ca-central-1"


def test_a_plain_target_takes_defaults_only(config: Path) -> None:
    args = parse("shell", "i-0123456789abcdef0")
    assert default_target(args, args.target) == "i-0123456789abcdef0"
    assert args.profile is None
    assert aws_settings(args).profile == "dev"
    assert setting(args, "user") == "admin"
    assert setting(args, "document") is None


def test_default_targets(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse("shell")
    with pytest.raises(NoTargetGiven, match="no target given"):
        default_target(args, None)
    monkeypatch.setenv("SSMSH_TARGET", "web")  # an alias, from the environment
    assert default_target(parse("shell"), None) == "Env=prod,Role=web"
    monkeypatch.delenv("SSMSH_TARGET")
    config.write_bytes(CONFIG.replace(b'user = "admin"', b'target = "web-2"'))
    args = parse("shell")
    assert default_target(args, None) == "web-2"
    assert args.endpoint_url == "http://127.0.0.1:9"
    args = parse("shell", "--local")
    assert default_target(args, None) == "i-0123456789abcdef0"  # --local's, first
    assert args.endpoint_url is None  # --local is its own endpoint


def test_ssh_own_user_options_beat_the_alias_user() -> None:
    from ssmsh.cli.ssh import _user_given

    assert _user_given(["-l", "bob"])
    assert _user_given(["-vlbob"])
    assert _user_given(["-p", "2222", "-o", "User=bob", "uptime"])
    assert _user_given(["-oUser bob"])
    assert not _user_given(["-p", "22", "uptime", "-l", "x"])  # -l of the remote command
    assert not _user_given(["-o", "Port=2222"])
    assert not _user_given([])
