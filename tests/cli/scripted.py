"""A scripted AWS for failure cases the emulator does not produce.

An HTTP endpoint on loopback speaking the awsJson1.1 protocol, with the fake
agent of ``tests/channel`` behind its StreamUrls: each operation either answers
(StartSession starts a fake-agent session) or fails with a configured AWS error.
"""

from __future__ import annotations

import base64
import json
from types import TracebackType

from ssmsh.emulator.httpserver import HttpRequest, HttpResponse, HttpServer
from ssmsh.exceptions import AwsError
from tests.channel.fakeagent import FakeAgent


class ScriptedAws:
    def __init__(self, agent: FakeAgent) -> None:
        self.agent = agent
        #: operation name (e.g. "StartSession") -> (HTTP status, error code, message)
        self.errors: dict[str, tuple[int, str, str]] = {}
        self.calls: list[str] = []
        self._http = HttpServer(self._handle)

    @property
    def endpoint_url(self) -> str:
        return self._http.url

    async def __aenter__(self) -> ScriptedAws:
        await self._http.start("127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.close()

    async def _handle(self, request: HttpRequest) -> HttpResponse:
        target = request.header("x-amz-target") or ""
        operation = target.rsplit(".", 1)[-1]
        self.calls.append(operation)
        if operation in self.errors:
            status, code, message = self.errors[operation]
            return HttpResponse.json(
                status, {"__type": code, "message": message}, "application/x-amz-json-1.1"
            )
        body = json.loads(request.body or b"{}")
        if operation == "StartSession":
            info = self.agent.start_session(body["Target"])
            result = {
                "SessionId": info.session_id,
                "TokenValue": info.stream.token_value,
                "StreamUrl": info.stream.stream_url,
            }
        elif operation == "TerminateSession":
            await self.agent.terminate_session(body["SessionId"])
            result = {"SessionId": body["SessionId"]}
        elif operation == "ResumeSession":
            stream = await self.agent.resume_session(body["SessionId"])
            result = {"SessionId": body["SessionId"]}
            if stream is not None:
                result.update({"TokenValue": stream.token_value, "StreamUrl": stream.stream_url})
        elif operation == "GenerateDataKey":
            try:
                key = await self.agent.generate_data_key(body["KeyId"], "", "")
            except AwsError as exc:
                return HttpResponse.json(400, {"__type": exc.code, "message": str(exc)})
            result = {
                "Plaintext": base64.b64encode(key.plaintext).decode(),
                "CiphertextBlob": base64.b64encode(key.ciphertext_blob).decode(),
                "KeyId": body["KeyId"],
            }
        else:
            return HttpResponse.json(400, {"__type": "UnknownOperationException", "message": ""})
        return HttpResponse.json(200, result, "application/x-amz-json-1.1")
