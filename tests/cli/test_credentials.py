"""Credentials that cannot be used: one line naming the fix, exit 255, nothing else.

An SSO profile that is not logged in (no token in the cache, or an expired one) and a
``credential_process`` that prints expired credentials, each in a throwaway AWS config
and HOME: botocore fails before any request, so the endpoint (loopback, closed) is
never reached. stderr must hold the one ``ssmsh:`` line, without botocore's warnings
and their tracebacks.
"""

from __future__ import annotations

import hashlib
import json
import stat
import sys
from pathlib import Path

import pytest

from .harness import run_cli

pytestmark = pytest.mark.timeout(60)

TARGET = "i-0123456789abcdef0"
START_URL = "https://example.awsapps.com/start"
EXPIRED = "2020-01-01T00:00:00Z"

CONFIG = f"""\
[profile sso]
sso_session = corp
sso_account_id = 123456789012
sso_role_name = Admin
region = us-east-1

[sso-session corp]
sso_start_url = {START_URL}
sso_region = us-east-1

[profile legacy-sso]
sso_start_url = {START_URL}
sso_region = us-east-1
sso_account_id = 123456789012
sso_role_name = Admin
region = us-east-1

[profile process]
credential_process = {{process}}
region = us-east-1
"""

#: The throwaway credentials of the harness would be used before any profile.
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@pytest.fixture
def aws_home(tmp_path: Path) -> dict[str, str]:
    """HOME with an empty SSO token cache, and an AWS config with the three profiles."""
    home = tmp_path / "home"
    (home / ".aws" / "sso" / "cache").mkdir(parents=True)
    process = tmp_path / "expired-credentials"
    document = {
        "Version": 1,
        "AccessKeyId": "AKIDEXPIREDEXPIRED00",
        "SecretAccessKey": "expired-secret",
        "SessionToken": "expired-token",
        "Expiration": EXPIRED,
    }
    process.write_text(f"#!{sys.executable}\nprint({json.dumps(json.dumps(document))})\n")
    process.chmod(process.stat().st_mode | stat.S_IXUSR)
    config = tmp_path / "config"
    config.write_text(CONFIG.format(process=process))
    return {
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }


def cache_expired_token(env: dict[str, str], key: str) -> None:
    """An expired token in the SSO cache, under the name botocore looks for (the SHA-1
    of the session name, or of the start URL for a legacy profile); no refresh token."""
    name = hashlib.sha1(key.encode()).hexdigest()
    token = {"startUrl": START_URL, "region": "us-east-1", "accessToken": "x", "expiresAt": EXPIRED}
    (Path(env["HOME"]) / ".aws" / "sso" / "cache" / f"{name}.json").write_text(json.dumps(token))


async def one_line(env: dict[str, str], *args: str) -> str:
    status, out, err = await run_cli(list(args), env=env, unset=CREDENTIAL_VARIABLES)
    text = err.decode()
    assert status == 255, text
    assert out == b""
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert "WARNING" not in text and "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize("command", [["ls"], ["shell", TARGET]])
async def test_sso_profile_not_logged_in(aws_home: dict[str, str], command: list[str]) -> None:
    line = await one_line(aws_home, "--profile", "sso", *command)
    assert line == (
        "ssmsh: the AWS SSO session has expired or is missing; run `aws sso login --profile sso`"
    )


async def test_sso_session_token_expired(aws_home: dict[str, str]) -> None:
    cache_expired_token(aws_home, "corp")
    line = await one_line({**aws_home, "AWS_PROFILE": "sso"}, "exec", TARGET, "true")
    assert line.endswith("run `aws sso login --profile sso`"), line


async def test_legacy_sso_profile_token_expired(aws_home: dict[str, str]) -> None:
    cache_expired_token(aws_home, START_URL)
    line = await one_line(aws_home, "status", TARGET, "--profile", "legacy-sso")
    assert line.endswith("run `aws sso login --profile legacy-sso`"), line


@pytest.mark.parametrize("command", [["ls"], ["shell", TARGET]])
async def test_credential_process_returning_expired_credentials(
    aws_home: dict[str, str], command: list[str]
) -> None:
    line = await one_line(aws_home, "--profile", "process", *command)
    assert line.startswith(
        "ssmsh: the credential_process of profile 'process' returned expired credentials"
    ), line
    assert "internal error" not in line
