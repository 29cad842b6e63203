"""Forward spec parsing."""

from __future__ import annotations

import pytest

from ssmsh.exceptions import UsageError
from ssmsh.tunnel.spec import (
    DOCUMENT_PORT,
    DOCUMENT_REMOTE_HOST,
    ForwardSpec,
    is_loopback_host,
    parse_spec,
    proxy_document,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8080:80", ForwardSpec(80, None, "127.0.0.1", 8080)),
        ("0:5432", ForwardSpec(5432, None, "127.0.0.1", 0)),
        ("8080:db.internal:5432", ForwardSpec(5432, "db.internal", "127.0.0.1", 8080)),
        ("8080:10.0.0.5:5432", ForwardSpec(5432, "10.0.0.5", "127.0.0.1", 8080)),
        ("0.0.0.0:8080:80", ForwardSpec(80, None, "0.0.0.0", 8080, bind_explicit=True)),
        ("*:8080:80", ForwardSpec(80, None, "*", 8080, bind_explicit=True)),
        ("5432", ForwardSpec(5432, None, "127.0.0.1", 5432)),
        ("localhost:8080:80", ForwardSpec(80, None, "localhost", 8080, bind_explicit=True)),
        ("[::1]:8080:80", ForwardSpec(80, None, "::1", 8080, bind_explicit=True)),
        (
            "[::]:8080:[fd00::5]:22",
            ForwardSpec(22, "fd00::5", "::", 8080, bind_explicit=True),
        ),
        (
            "192.168.1.2:0:db:5432",
            ForwardSpec(5432, "db", "192.168.1.2", 0, bind_explicit=True),
        ),
        ("8080:[fd00::5]:22", ForwardSpec(22, "fd00::5", "127.0.0.1", 8080)),
        ("/tmp/app.sock:80", ForwardSpec(80, None, local_socket="/tmp/app.sock")),
        ("./pg.sock:db:5432", ForwardSpec(5432, "db", local_socket="./pg.sock")),
        ("/run/x.sock:[fd00::1]:22", ForwardSpec(22, "fd00::1", local_socket="/run/x.sock")),
    ],
)
def test_valid_specs(text: str, expected: ForwardSpec) -> None:
    spec = parse_spec(text)
    assert dataclass_fields(spec) == dataclass_fields(expected)
    assert spec.text == text


def dataclass_fields(spec: ForwardSpec) -> tuple[object, ...]:
    return (
        spec.remote_port,
        spec.remote_host,
        spec.bind,
        spec.local_port,
        spec.local_socket,
        spec.bind_explicit,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "bad forward spec"),
        ("0", "remote port 0 is out of range"),
        ("http", "expected PORT"),
        ("a:b:c:d:e", "expected"),
        ("8080:0", "remote port 0 is out of range"),
        ("8080:70000", "out of range"),
        ("-1:80", "not a port number"),
        ("70000:80", "out of range"),
        ("8080:http", "not a port number"),
        (":8080:80", "empty bind address"),
        ("host:db:80", "ambiguous"),
        ("1:2:3", "ambiguous"),
        ("8080::80", "empty remote host"),
        ("0.0.0.0:8080::80", "empty remote host"),
        ("[::1:8080:80", "unbalanced"),
        ("[::1]x:8080:80", "text after"),
        ("[]:8080:80", "empty brackets"),
        ("/tmp/x.sock", "missing remote port"),
        ("/tmp/x.sock:a:b:c", "expected LOCALSOCKET"),
        ("/tmp/dir/:80", "directory"),
        ("/" + "x" * 120 + ":80", "longer than"),
        (" 8080:80", "bad forward spec"),
        ("8080:bad host:80", "not a host name"),
    ],
)
def test_invalid_specs(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_spec(text)


def test_documents_and_parameters() -> None:
    plain = parse_spec("0:5432")
    assert plain.document_name == DOCUMENT_PORT
    assert plain.document_parameters(41234) == {
        "portNumber": ["5432"],
        "localPortNumber": ["41234"],
    }
    remote = parse_spec("8080:db:5432")
    assert remote.document_name == DOCUMENT_REMOTE_HOST
    assert remote.document_parameters() == {
        "portNumber": ["5432"],
        "host": ["db"],
        "localPortNumber": ["8080"],
    }
    unix = parse_spec("/tmp/s.sock:22")
    assert unix.document_parameters() == {"portNumber": ["22"]}
    assert proxy_document(22) == ("AWS-StartSSHSession", {"portNumber": ["22"]})


def test_labels() -> None:
    assert parse_spec("[::1]:8080:[fd00::5]:22").remote_label == "[fd00::5]:22"
    assert parse_spec("[::1]:8080:22").local_label == "[::1]:8080"
    assert parse_spec("8080:22").remote_label == "localhost:22"
    assert parse_spec("/tmp/a.sock:22").local_label == "/tmp/a.sock"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.5.6.7", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
