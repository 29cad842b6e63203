"""``ssmsh ls`` and ``ssmsh status``, the real CLI against the emulator (and, for what
only AWS serves, a scripted SSM endpoint on loopback)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import pytest

from ssmsh.emulator import Emulator
from ssmsh.emulator.httpserver import HttpRequest, HttpResponse, HttpServer

from .fleet import BARE, DB_1, WEB_1, WEB_2, closed_port_url, fleet, one_line, ssmsh, ssmsh_json
from .harness import PtyProcess, run_cli

__all__ = ["fleet"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(90)


def ids(instances: list[dict[str, Any]]) -> list[Any]:
    return [i["InstanceId"] for i in instances]


# -- status -----------------------------------------------------------------------------


async def test_status(fleet: Emulator) -> None:
    code, out, err = await ssmsh(fleet, "status", "web-1", DB_1)
    assert (code, out, err) == (0, f"web-1 ({WEB_1}): connected\n{DB_1}: connected\n", "")

    fleet.disconnect_instance(DB_1)
    code, out, err = await ssmsh(fleet, "status", "web-1", "db-1")
    assert (code, err) == (1, "")
    assert out == f"web-1 ({WEB_1}): connected\ndb-1 ({DB_1}): notconnected\n"

    # an unknown name is one line; the other targets are still asked
    code, out, err = await ssmsh(fleet, "status", "nobody", WEB_2)
    assert code == 255
    assert out == f"{WEB_2}: connected\n"
    assert "no managed instance named 'nobody'" in one_line(err)

    code, out, err = await ssmsh(fleet, "status")
    assert (code, out) == (255, "")
    assert "no target given" in one_line(err)


# -- ls -----------------------------------------------------------------------------------


async def test_ls_json_and_filters(fleet: Emulator) -> None:
    everything = await ssmsh_json(fleet, "ls")
    assert ids(everything) == [WEB_1, DB_1, WEB_2, BARE]
    web = everything[0]
    assert web["PingStatus"] == "Online"
    assert web["AgentVersion"] == "3.3.1142.0"
    assert web["PlatformType"] == "Linux"
    assert web["IPAddress"] == "127.0.0.1"
    assert web["ComputerName"]
    assert web["LastPingDateTime"].endswith("+00:00")
    # Names come from DescribeInstanceProperties; the bare instance has none.
    assert [i["NameTag"] for i in everything] == ["web-1", "db-1", "web-2", None]

    [named] = await ssmsh_json(fleet, "ls", "--tag", "Name=web-2")
    assert (named["InstanceId"], named["NameTag"]) == (WEB_2, "web-2")
    assert ids(await ssmsh_json(fleet, "ls", "--tag", "env=prod")) == [WEB_1, DB_1]
    assert ids(await ssmsh_json(fleet, "ls", "--tag", "role")) == [DB_1]
    assert ids(await ssmsh_json(fleet, "ls", "--tag", "env=prod", "--tag", "env=dev")) == [
        WEB_1,
        DB_1,
        WEB_2,
    ]
    assert ids(await ssmsh_json(fleet, "ls", "--tag", "env=prod", "--tag", "role=db")) == [DB_1]
    assert ids(await ssmsh_json(fleet, "ls", "--filter", "PlatformTypes=Windows")) == [WEB_2]
    assert ids(await ssmsh_json(fleet, "ls", "--filter", f"InstanceIds={BARE}")) == [BARE]
    assert await ssmsh_json(fleet, "ls", "--tag", "env=test") == []

    fleet.disconnect_instance(DB_1)
    assert ids(await ssmsh_json(fleet, "ls", "--online")) == [WEB_1, WEB_2, BARE]
    assert ids(await ssmsh_json(fleet, "ls", "--online", "--tag", "env=prod")) == [WEB_1]
    lost = await ssmsh_json(fleet, "ls", "--filter", "PingStatus=ConnectionLost")
    assert [(i["InstanceId"], i["PingStatus"]) for i in lost] == [(DB_1, "ConnectionLost")]


async def test_ls_table_on_a_terminal(fleet: Emulator) -> None:
    proc = PtyProcess(["ls", "--tag", "Name=web-1", "--endpoint-url", fleet.endpoint_url], cols=200)
    try:
        assert await proc.wait() == 0
    finally:
        proc.close()
    header, row = proc.text.replace("\r\n", "\n").strip().splitlines()
    assert header.split() == ["INSTANCE", "NAME", "PING", "PLATFORM", "AGENT", "IP", "COMPUTER"]
    assert row.split()[:6] == [WEB_1, "web-1", "Online", "Linux", "3.3.1142.0", "127.0.0.1"]
    assert header.index("PING") == row.index("Online")

    proc = PtyProcess(["ls", "--tag", "env=none", "--endpoint-url", fleet.endpoint_url])
    try:
        assert await proc.wait() == 0
    finally:
        proc.close()
    assert proc.text.strip() == "No managed instances match."


async def test_ls_bad_filters(fleet: Emulator) -> None:
    cases = [
        (["ls", "--filter", "Color=red"], "--filter: unknown key 'Color'"),
        (["ls", "--filter", "PingStatus"], "--filter expects KEY=VALUE"),
        (["ls", "--tag", "=x"], "--tag expects TAG or TAG=VALUE"),
        (["ls", "--tag", "env="], "--tag expects TAG or TAG=VALUE"),
    ]
    for args, expected in cases:
        code, out, err = await ssmsh(fleet, *args)
        assert (code, out) == (255, ""), (args, err)
        assert expected in one_line(err), (args, err)


async def test_unreachable_endpoint() -> None:
    url = closed_port_url()
    for args in (["ls"], ["status", "web-1", "web-2"], ["status", WEB_1]):
        code, out, err = await ssmsh(url, *args)
        assert (code, out) == (255, ""), (args, err)
        assert f"cannot reach the AWS endpoint {url}" in one_line(err), (args, err)


async def test_local() -> None:
    code, out, err = await run_cli(["ls", "--local"])
    assert code == 0, err
    assert ids(json.loads(out)) == [WEB_1]
    code, out, err = await run_cli(["status", "--local"])
    assert (code, out) == (0, f"{WEB_1}: connected\n".encode()), err


# -- what only AWS serves: DescribeInstanceProperties ---------------------------------------


class ScriptedSsm:
    """DescribeInstanceInformation and DescribeInstanceProperties as AWS answers them."""

    def __init__(self) -> None:
        self.instances = [
            {"InstanceId": WEB_1, "PingStatus": "Online", "PlatformName": "Amazon Linux"},
            {"InstanceId": DB_1, "PingStatus": "ConnectionLost", "PlatformName": "Ubuntu"},
        ]
        self.names = {WEB_1: "web-9"}
        #: (code, message) to fail DescribeInstanceInformation / DescribeInstanceProperties with
        self.listing_error: tuple[str, str] | None = None
        self.properties_error: tuple[str, str] | None = None
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._http = HttpServer(self._handle)

    @property
    def endpoint_url(self) -> str:
        return self._http.url

    async def __aenter__(self) -> ScriptedSsm:
        await self._http.start("127.0.0.1", 0)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._http.close()

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.requests]

    async def _handle(self, request: HttpRequest) -> HttpResponse:
        operation = (request.header("x-amz-target") or "").rsplit(".", 1)[-1]
        body = json.loads(request.body or b"{}")
        self.requests.append((operation, body))
        kind = "application/x-amz-json-1.1"
        error = {
            "DescribeInstanceInformation": self.listing_error,
            "DescribeInstanceProperties": self.properties_error,
        }.get(operation)
        if error is not None:
            return HttpResponse.json(400, {"__type": error[0], "message": error[1]}, kind)
        if operation == "DescribeInstanceInformation":
            return HttpResponse.json(200, {"InstanceInformationList": self.instances}, kind)
        if operation == "DescribeInstanceProperties":
            found = [{"InstanceId": i, "Name": n} for i, n in self.names.items()]
            return HttpResponse.json(200, {"InstanceProperties": found}, kind)
        return HttpResponse.json(400, {"__type": "UnknownOperationException"}, kind)


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedSsm]:
    async with ScriptedSsm() as ssm:
        yield ssm


async def test_names_from_describe_instance_properties(scripted: ScriptedSsm) -> None:
    found = await ssmsh_json(scripted.endpoint_url, "ls")
    assert [(i["InstanceId"], i["NameTag"]) for i in found] == [(WEB_1, "web-9"), (DB_1, None)]
    assert sorted(scripted.operations()) == [
        "DescribeInstanceInformation",
        "DescribeInstanceProperties",
    ]
    properties = dict(scripted.requests)["DescribeInstanceProperties"]
    assert properties == {"MaxResults": 1000}

    # AWS takes tag filters only on their own: the others are applied here
    scripted.requests.clear()
    found = await ssmsh_json(scripted.endpoint_url, "ls", "--tag", "env=prod", "--online")
    assert ids(found) == [WEB_1]
    listing = dict(scripted.requests)["DescribeInstanceInformation"]
    assert listing["Filters"] == [{"Key": "tag:env", "Values": ["prod"]}]
    scripted.requests.clear()
    await ssmsh_json(scripted.endpoint_url, "ls", "--online")
    listing = dict(scripted.requests)["DescribeInstanceInformation"]
    assert listing["Filters"] == [{"Key": "PingStatus", "Values": ["Online"]}]

    # a Name filter says what the Names are: no second call
    scripted.requests.clear()
    found = await ssmsh_json(scripted.endpoint_url, "ls", "--tag", "Name=web-9")
    assert scripted.operations() == ["DescribeInstanceInformation"]


async def test_names_refused(scripted: ScriptedSsm) -> None:
    scripted.properties_error = ("AccessDeniedException", "not authorized")
    code, out, err = await ssmsh(scripted.endpoint_url, "ls")
    assert code == 0
    assert [i["NameTag"] for i in json.loads(out)] == [None, None]
    assert "Name tags not shown: access denied by AWS for DescribeInstanceProperties" in one_line(
        err
    )
    code, out, err = await ssmsh(scripted.endpoint_url, "ls", "-q")
    assert (code, err) == (0, "")

    # the listing refused: one line, 255, and nothing about the Names
    scripted.listing_error = ("InvalidFilterKey", "The filter key Color is not valid.")
    code, out, err = await ssmsh(scripted.endpoint_url, "ls")
    assert (code, out) == (255, "")
    line = one_line(err)
    assert "DescribeInstanceInformation failed: InvalidFilterKey: The filter key" in line
