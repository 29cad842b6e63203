"""SSM documents in the emulator, driven by real boto3 clients (botocore parses every answer)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import botocore.session
import pytest
import yaml

from ssmsh.emulator import DEFAULT_TARGET
from tests.conftest import scaled
from tests.emulator.conftest import ACCESS_KEY, SECRET_KEY, EmulatorThread

ACCOUNT = "123456789012"
AWS_SESSION_DOCUMENTS = (
    "AWS-StartSSHSession",
    "AWS-StartPortForwardingSession",
    "AWS-StartPortForwardingSessionToRemoteHost",
    "AWS-StartInteractiveCommand",
    "AWS-StartNonInteractiveCommand",
)
_MODEL = botocore.session.get_session().get_service_model("ssm")
_COMMON = {"ValidationException", "SerializationException"}
#: Codes the service answers with that its model does not list (the emulator keeps them).
_UNLISTED = {"StartSession": {"InvalidParameters"}}


def refused(fn: Any, operation: str | None = None, **kwargs: Any) -> tuple[str, str]:
    """(code, message) of a refused call; the code must be one AWS uses for it."""
    with pytest.raises(botocore.exceptions.ClientError) as exc_info:
        fn(**kwargs)
    error = exc_info.value.response["Error"]
    code, message = str(error["Code"]), str(error["Message"])
    name = operation or exc_info.value.operation_name
    listed = {shape.name for shape in _MODEL.operation_model(name).error_shapes}
    assert code in listed | _COMMON | _UNLISTED.get(name, set()), f"{name} does not list {code}"
    return code, message


def session_doc(**fields: Any) -> str:
    return json.dumps({"schemaVersion": "1.0", **fields})


STREAM = session_doc(
    description="Shell with our preferences",
    sessionType="Standard_Stream",
    parameters={"timeout": {"type": "String", "default": "30", "allowedPattern": "^[0-9]+$"}},
    inputs={
        "idleSessionTimeout": "{{ timeout }}",
        "maxSessionDuration": "90",
        "runAsEnabled": True,
        "runAsDefaultUser": "ec2-user",
        "kmsKeyId": "alias/from-document",
        "shellProfile": {"linux": "cd /tmp"},
    },
)
NONINTERACTIVE = session_doc(
    sessionType="NonInteractiveCommands",
    parameters={
        "path": {"type": "String", "allowedValues": ["/var/log", "/tmp"]},
        "lines": {"type": "String", "default": "10", "allowedPattern": "^[0-9]{1,3}$"},
    },
    properties={
        "linux": {
            "commands": "tail -n {{ lines }} {{ path }}/messages",
            "runAsElevated": False,
            "separateOutputStream": True,
        },
        "windows": {"commands": "Get-Content {{ path }}", "runAsElevated": False},
    },
)


@pytest.fixture
def raw(emu: EmulatorThread) -> Any:
    """A client that skips botocore's own checks, so that the emulator's are seen."""
    session: Any = boto3.session.Session()
    return session.client(
        "ssm",
        endpoint_url=emu.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=botocore.config.Config(
            parameter_validation=False,
            retries={"total_max_attempts": 1, "mode": "standard"},
            read_timeout=scaled(10),
        ),
    )


# -- the documents every account starts with --------------------------------------------


@pytest.mark.parametrize("name", AWS_SESSION_DOCUMENTS)
def test_aws_session_documents_are_there(ssm: Any, name: str) -> None:
    document = ssm.describe_document(Name=name)["Document"]
    assert document["Owner"] == "Amazon"
    assert (document["Status"], document["DocumentType"]) == ("Active", "Session")
    assert (document["SchemaVersion"], document["DocumentFormat"]) == ("1.0", "JSON")
    assert document["DocumentVersion"] == document["DefaultVersion"] == "1"
    assert document["HashType"] == "Sha256"
    assert set(document["PlatformTypes"]) == {"Windows", "Linux", "MacOS"}
    text = ssm.get_document(Name=name)["Content"]
    assert document["Hash"] == hashlib.sha256(text.encode()).hexdigest()
    content = json.loads(text)
    assert "separateOutputStream" not in json.dumps(content)
    parameters = {p["Name"]: p for p in document["Parameters"]}
    assert set(parameters) == set(content.get("parameters", {}))


def test_aws_document_contents(ssm: Any) -> None:
    def content(name: str) -> Any:
        return json.loads(ssm.get_document(Name=name)["Content"])

    ssh = content("AWS-StartSSHSession")
    assert ssh["sessionType"] == "Port"
    assert ssh["parameters"]["portNumber"]["default"] == "22"
    assert ssh["properties"] == {"portNumber": "{{ portNumber }}"}
    remote = content("AWS-StartPortForwardingSessionToRemoteHost")
    assert "default" not in remote["parameters"]["host"]
    assert remote["properties"]["host"] == "{{ host }}"
    assert remote["properties"]["type"] == "LocalPortForwarding"
    command = content("AWS-StartNonInteractiveCommand")
    assert command["sessionType"] == "NonInteractiveCommands"
    assert set(command["properties"]) == {"windows", "linux", "macos"}
    assert command["properties"]["linux"] == {"commands": "{{command}}", "runAsElevated": False}
    script = ssm.describe_document(Name="AWS-RunShellScript")["Document"]
    assert (script["DocumentType"], script["SchemaVersion"]) == ("Command", "1.2")
    assert script["PlatformTypes"] == ["Linux", "MacOS"]
    defaults = {p["Name"]: p.get("DefaultValue") for p in script["Parameters"]}
    assert defaults == {"commands": None, "workingDirectory": "", "executionTimeout": "3600"}


def test_session_manager_preferences_belong_to_the_account(ssm: Any) -> None:
    document = ssm.describe_document(Name="SSM-SessionManagerRunShell")["Document"]
    assert document["Owner"] == ACCOUNT
    inputs = json.loads(ssm.get_document(Name="SSM-SessionManagerRunShell")["Content"])["inputs"]
    assert inputs["s3EncryptionEnabled"] is True and inputs["runAsEnabled"] is False
    assert (inputs["idleSessionTimeout"], inputs["maxSessionDuration"]) == ("20", "")
    assert inputs["shellProfile"] == {"windows": "", "linux": ""}
    code, _ = refused(
        ssm.create_document, Name="SSM-SessionManagerRunShell", Content=STREAM,
        DocumentType="Session",
    )  # fmt: skip
    assert code == "DocumentAlreadyExists"


# -- create, describe, get ----------------------------------------------------------------


def test_create_json_and_describe(ssm: Any) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    created = ssm.create_document(
        Name="Team-Shell",
        Content=STREAM,
        DocumentType="Session",
        Tags=[{"Key": "team", "Value": "infra"}],
        VersionName="first",
        DisplayName="Team shell",
    )["DocumentDescription"]
    assert created["Name"] == "Team-Shell"
    assert created["Owner"] == ACCOUNT
    assert created["Hash"] == hashlib.sha256(STREAM.encode()).hexdigest()
    assert (created["DocumentVersion"], created["LatestVersion"], created["DefaultVersion"]) == (
        "1",
        "1",
        "1",
    )
    assert created["DocumentFormat"] == "JSON"
    assert created["Description"] == "Shell with our preferences"
    assert created["VersionName"] == "first" and created["DisplayName"] == "Team shell"
    assert created["Parameters"] == [
        {"Name": "timeout", "Type": "String", "DefaultValue": "30"},
    ]
    assert created["Tags"] == [{"Key": "team", "Value": "infra"}]
    assert created["CreatedDate"] >= before
    described = ssm.describe_document(Name="Team-Shell")["Document"]
    assert described == created
    arn = f"arn:aws:ssm:us-east-1:{ACCOUNT}:document/Team-Shell"
    assert ssm.describe_document(Name=arn)["Document"]["Name"] == "Team-Shell"
    got = ssm.get_document(Name="Team-Shell")
    assert got["Content"] == STREAM
    assert (got["DocumentType"], got["DocumentFormat"], got["Status"]) == (
        "Session",
        "JSON",
        "Active",
    )


def test_yaml_content_and_format_conversion(ssm: Any) -> None:
    text = (
        "schemaVersion: '1.0'\n"
        "description: Forward to a fixed port\n"
        "sessionType: Port\n"
        "parameters:\n"
        "  port:\n"
        "    type: String\n"
        "    default: '5432'\n"
        "properties:\n"
        "  portNumber: '{{ port }}'\n"
        "  type: LocalPortForwarding\n"
        "  localPortNumber: '0'\n"
    )
    created = ssm.create_document(
        Name="Db-Tunnel", Content=text, DocumentType="Session", DocumentFormat="YAML"
    )["DocumentDescription"]
    assert created["DocumentFormat"] == "YAML"
    assert ssm.get_document(Name="Db-Tunnel")["Content"] == text
    as_json = ssm.get_document(Name="Db-Tunnel", DocumentFormat="JSON")
    assert as_json["DocumentFormat"] == "JSON"
    assert json.loads(as_json["Content"]) == yaml.safe_load(text)
    # And the other way: a JSON document read as YAML.
    as_yaml = ssm.get_document(Name="AWS-StartSSHSession", DocumentFormat="YAML")["Content"]
    original = ssm.get_document(Name="AWS-StartSSHSession")["Content"]
    assert yaml.safe_load(as_yaml) == json.loads(original)


def test_command_documents_are_stored(emu: EmulatorThread, ssm: Any) -> None:
    content = json.dumps(
        {
            "schemaVersion": "2.2",
            "description": "Says hello",
            "parameters": {"who": {"type": "String", "default": "world"}},
            "mainSteps": [
                {
                    "action": "aws:runShellScript",
                    "name": "hello",
                    "inputs": {"runCommand": ["echo hello {{ who }}"]},
                }
            ],
        }
    )
    created = ssm.create_document(Name="Say-Hello", Content=content)["DocumentDescription"]
    assert (created["DocumentType"], created["SchemaVersion"]) == ("Command", "2.2")
    assert created["PlatformTypes"] == ["Linux", "MacOS"]
    code, message = refused(ssm.start_session, Target=DEFAULT_TARGET, DocumentName="Say-Hello")
    assert code == "InvalidDocument" and "Session" in message


# -- versions ---------------------------------------------------------------------------


def test_versions_and_the_default_version(ssm: Any) -> None:
    ssm.create_document(Name="Versioned", Content=STREAM, DocumentType="Session")
    second = STREAM.replace('"90"', '"120"')
    updated = ssm.update_document(Name="Versioned", Content=second, DocumentVersion="$LATEST")
    description = updated["DocumentDescription"]
    assert (description["DocumentVersion"], description["LatestVersion"]) == ("2", "2")
    assert description["DefaultVersion"] == "1"  # an update does not move the default
    third = STREAM.replace('"90"', '"150"')
    code, message = refused(
        ssm.update_document, Name="Versioned", Content=third, DocumentVersion="1"
    )
    assert code == "InvalidDocumentVersion" and "latest" in message
    code, _ = refused(ssm.update_document, Name="Versioned", Content=second)
    assert code == "DuplicateDocumentContent"
    ssm.update_document(Name="Versioned", Content=third, DocumentVersion="2", VersionName="v3")
    code, _ = refused(ssm.update_document, Name="Versioned", Content=STREAM + " ", VersionName="v3")
    assert code == "DuplicateDocumentVersionName"

    def version_of(**selector: str) -> str:
        document = ssm.describe_document(Name="Versioned", **selector)["Document"]
        return str(document["DocumentVersion"])

    assert version_of() == "1"
    assert version_of(DocumentVersion="$DEFAULT") == "1"
    assert version_of(DocumentVersion="$LATEST") == "3"
    assert version_of(DocumentVersion="2") == "2"
    assert version_of(VersionName="v3") == "3"
    assert "150" in ssm.get_document(Name="Versioned", DocumentVersion="3")["Content"]
    code, _ = refused(ssm.describe_document, Name="Versioned", DocumentVersion="9")
    assert code == "InvalidDocumentVersion"
    code, _ = refused(ssm.get_document, Name="Versioned", VersionName="nope")
    assert code == "InvalidDocumentVersion"

    answer = ssm.update_document_default_version(Name="Versioned", DocumentVersion="3")
    assert answer["Description"] == {
        "Name": "Versioned",
        "DefaultVersion": "3",
        "DefaultVersionName": "v3",
    }
    assert version_of() == "3"
    assert ssm.describe_document(Name="Versioned")["Document"]["DefaultVersion"] == "3"
    code, _ = refused(ssm.update_document_default_version, Name="Versioned", DocumentVersion="7")
    assert code == "InvalidDocumentVersion"
    code, _ = refused(ssm.update_document_default_version, Name="Nope-Doc", DocumentVersion="1")
    assert code == "InvalidDocument"
    code, _ = refused(
        ssm.update_document_default_version, Name="AWS-StartSSHSession", DocumentVersion="1"
    )
    assert code == "InvalidDocument"


def test_delete_versions_and_documents(ssm: Any) -> None:
    ssm.create_document(Name="Short-Lived", Content=STREAM, DocumentType="Session")
    ssm.update_document(Name="Short-Lived", Content=STREAM.replace('"90"', '"91"'))
    code, message = refused(ssm.delete_document, Name="Short-Lived", DocumentVersion="1")
    assert code == "InvalidDocumentOperation" and "default" in message
    ssm.delete_document(Name="Short-Lived", DocumentVersion="2")
    assert ssm.describe_document(Name="Short-Lived")["Document"]["LatestVersion"] == "1"
    code, _ = refused(ssm.describe_document, Name="Short-Lived", DocumentVersion="2")
    assert code == "InvalidDocumentVersion"
    ssm.delete_document(Name="Short-Lived")
    code, message = refused(ssm.describe_document, Name="Short-Lived")
    assert (code, message) == ("InvalidDocument", "Document with name Short-Lived does not exist.")
    code, _ = refused(ssm.delete_document, Name="Short-Lived")
    assert code == "InvalidDocument"


@pytest.mark.parametrize("name", ["AWS-StartSSHSession", "AWS-RunShellScript"])
def test_aws_documents_cannot_be_changed(ssm: Any, name: str) -> None:
    code, _ = refused(ssm.delete_document, Name=name)
    assert code == "InvalidDocumentOperation"
    code, _ = refused(ssm.update_document, Name=name, Content=STREAM)
    assert code == "InvalidDocumentOperation"
    assert ssm.describe_document(Name=name)["Document"]["Owner"] == "Amazon"


# -- content checks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "document_type", "code"),
    [
        ("{not json", "Session", "InvalidDocumentContent"),
        ("[1, 2]", "Session", "InvalidDocumentContent"),
        (session_doc(sessionType="Shell"), "Session", "InvalidDocumentContent"),
        (session_doc(sessionType="Port", mainSteps=[]), "Session", "InvalidDocumentContent"),
        (session_doc(sessionType="Standard_Stream"), "Session", "InvalidDocumentContent"),
        (
            session_doc(sessionType="Standard_Stream", inputs={"colour": "blue"}),
            "Session",
            "InvalidDocumentContent",
        ),
        (
            session_doc(sessionType="Standard_Stream", inputs={"idleSessionTimeout": "61"}),
            "Session",
            "InvalidDocumentContent",
        ),
        (
            session_doc(sessionType="Standard_Stream", inputs={"runAsEnabled": "maybe"}),
            "Session",
            "InvalidDocumentContent",
        ),
        (
            session_doc(sessionType="Port", parameters={"p": {"type": "Number"}}),
            "Session",
            "InvalidDocumentContent",
        ),
        (
            session_doc(sessionType="Port", parameters={"p": {"type": "String", "default": 5}}),
            "Session",
            "InvalidDocumentContent",
        ),
        (
            session_doc(sessionType="Port", properties={"portNumber": "{{ undeclared }}"}),
            "Session",
            "InvalidDocumentContent",
        ),
        (
            json.dumps({"schemaVersion": "2.2", "sessionType": "Port"}),
            "Session",
            "InvalidDocumentSchemaVersion",
        ),
        (json.dumps({"sessionType": "Port"}), "Session", "InvalidDocumentContent"),
        (session_doc(sessionType="Port"), "Command", "InvalidDocumentSchemaVersion"),
        (
            json.dumps({"schemaVersion": "2.2", "mainSteps": []}),
            "Command",
            "InvalidDocumentContent",
        ),
        ("x" * (64 * 1024 + 1), "Session", "MaxDocumentSizeExceeded"),
    ],
)
def test_create_refuses_bad_content(ssm: Any, content: str, document_type: str, code: str) -> None:
    got, message = refused(
        ssm.create_document, Name="Bad-Doc", Content=content, DocumentType=document_type
    )
    assert got == code and message
    refused(ssm.describe_document, Name="Bad-Doc")  # nothing was stored


def test_update_checks_content_too(ssm: Any) -> None:
    ssm.create_document(Name="Checked", Content=STREAM, DocumentType="Session")
    code, _ = refused(ssm.update_document, Name="Checked", Content="{}")
    assert code == "InvalidDocumentContent"
    code, _ = refused(
        ssm.update_document,
        Name="Checked",
        Content=json.dumps({"schemaVersion": "2.2", "sessionType": "Port"}),
    )
    assert code == "InvalidDocumentSchemaVersion"
    code, _ = refused(ssm.update_document, Name="No-Such-Doc", Content=STREAM)
    assert code == "InvalidDocument"
    code, _ = refused(ssm.update_document, Name="Checked", Content="x" * (64 * 1024 + 1))
    assert code == "MaxDocumentSizeExceeded"


def test_validation_against_the_model(raw: Any) -> None:
    code, message = refused(raw.create_document, Name="a", Content=STREAM)
    assert code == "ValidationException"
    assert message == (
        "1 validation error detected: Value 'a' at 'name' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: ^[a-zA-Z0-9_\\-.]{3,128}$"
    )
    code, message = refused(
        raw.get_document, Name="AWS-StartSSHSession", DocumentVersion="x", DocumentFormat="XML"
    )
    assert message.startswith("2 validation errors detected: Value 'x' at 'documentVersion'")
    assert "Member must satisfy enum value set: [YAML, JSON, TEXT]" in message
    code, message = refused(raw.update_document, Name="abc")
    assert message.endswith("Value null at 'content' failed to satisfy constraint: "
                            "Member must not be null")  # fmt: skip
    code, _ = refused(raw.list_documents, MaxResults=51)
    assert code == "ValidationException"
    code, _ = refused(raw.create_document, Name="Wrong-Type", Content=5)
    assert code == "SerializationException"
    code, message = refused(raw.create_document, Name="aws-mine", Content=STREAM)
    assert code == "ValidationException" and "reserved" in message


# -- ListDocuments ----------------------------------------------------------------------


@pytest.fixture
def listed(ssm: Any) -> list[str]:
    names = ["Alpha-One", "Alpha-Two", "Beta-One"]
    for index, name in enumerate(names):
        ssm.create_document(
            Name=name,
            Content=STREAM.replace('"90"', f'"{index + 1}"'),
            DocumentType="Session",
            Tags=[{"Key": "team", "Value": "alpha" if name.startswith("Alpha") else "beta"}],
        )
    return names


def names_of(ssm: Any, **kwargs: Any) -> list[str]:
    paginator = ssm.get_paginator("list_documents")
    return [
        item["Name"]
        for page in paginator.paginate(**kwargs)
        for item in page["DocumentIdentifiers"]
    ]


def test_list_documents_filters(ssm: Any, listed: list[str]) -> None:
    everything = names_of(ssm)
    assert set(listed) | set(AWS_SESSION_DOCUMENTS) | {"SSM-SessionManagerRunShell"} <= set(
        everything
    )
    mine = names_of(ssm, Filters=[{"Key": "Owner", "Values": ["Self"]}])
    assert mine == sorted([*listed, "SSM-SessionManagerRunShell"])
    assert names_of(ssm, Filters=[{"Key": "Owner", "Values": ["Private"]}]) == mine
    amazon = names_of(ssm, Filters=[{"Key": "Owner", "Values": ["Amazon"]}])
    assert set(amazon) == {*AWS_SESSION_DOCUMENTS, "AWS-RunShellScript"}
    assert names_of(ssm, Filters=[{"Key": "Owner", "Values": ["Public"]}]) == []
    assert names_of(ssm, Filters=[{"Key": "Name", "Values": ["Alpha"]}]) == listed[:2]
    assert names_of(ssm, Filters=[{"Key": "tag:team", "Values": ["beta"]}]) == ["Beta-One"]
    assert names_of(
        ssm,
        Filters=[
            {"Key": "DocumentType", "Values": ["Command"]},
            {"Key": "PlatformTypes", "Values": ["Linux"]},
        ],
    ) == ["AWS-RunShellScript"]
    assert names_of(ssm, DocumentFilterList=[{"key": "Name", "value": "Beta-One"}]) == ["Beta-One"]
    legacy = names_of(ssm, DocumentFilterList=[{"key": "Owner", "value": "Amazon"}])
    assert set(legacy) == set(amazon)
    identifier = ssm.list_documents(Filters=[{"Key": "Name", "Values": ["Beta-One"]}])[
        "DocumentIdentifiers"
    ][0]
    assert identifier["Owner"] == ACCOUNT
    assert (identifier["DocumentType"], identifier["SchemaVersion"]) == ("Session", "1.0")
    assert identifier["DocumentVersion"] == "1"
    assert identifier["Tags"] == [{"Key": "team", "Value": "beta"}]


def test_list_documents_paging(ssm: Any, listed: list[str]) -> None:
    seen: list[str] = []
    kwargs: dict[str, Any] = {"MaxResults": 2}
    pages = 0
    while True:
        response = ssm.list_documents(**kwargs)
        pages += 1
        assert len(response["DocumentIdentifiers"]) <= 2
        seen += [d["Name"] for d in response["DocumentIdentifiers"]]
        if "NextToken" not in response:
            break
        kwargs["NextToken"] = response["NextToken"]
    assert seen == names_of(ssm) and pages == (len(seen) + 1) // 2
    paged = names_of(ssm, PaginationConfig={"PageSize": 3})
    assert paged == seen
    token = ssm.list_documents(MaxResults=1)["NextToken"]
    code, _ = refused(
        ssm.list_documents, NextToken=token, Filters=[{"Key": "Owner", "Values": ["Self"]}]
    )
    assert code == "InvalidNextToken"


def test_list_documents_bad_filters(ssm: Any) -> None:
    code, _ = refused(ssm.list_documents, Filters=[{"Key": "Colour", "Values": ["red"]}])
    assert code == "InvalidFilterKey"
    code, message = refused(
        ssm.list_documents, DocumentFilterList=[{"key": "Colour", "value": "red"}]
    )
    assert code == "InvalidFilterKey" and "documentFilterList.1.member.key" in message
    code, _ = refused(ssm.list_documents, Filters=[{"Key": "Owner", "Values": ["Self", "Amazon"]}])
    assert code == "ValidationException"


# -- StartSession with the stored documents ---------------------------------------------------


def test_start_session_with_a_standard_stream_document(
    emu: EmulatorThread, ssm: Any, kms: Any
) -> None:
    ssm.create_document(Name="Team-Shell", Content=STREAM, DocumentType="Session")
    session_id = ssm.start_session(
        Target=DEFAULT_TARGET, DocumentName="Team-Shell", Parameters={"timeout": ["45"]}
    )["SessionId"]
    record = emu.state.sessions[session_id]
    assert (record.document_name, record.session_type) == ("Team-Shell", "Standard_Stream")
    assert record.properties == {} and record.command is None
    assert record.parameters == {"timeout": ["45"]}
    inputs = record.inputs
    assert inputs["idleSessionTimeout"] == "45"  # from the parameter
    assert inputs["maxSessionDuration"] == "90"
    assert inputs["runAsEnabled"] is True and inputs["runAsDefaultUser"] == "ec2-user"
    assert inputs["shellProfile"] == {"windows": "", "linux": "cd /tmp"}
    assert inputs["s3EncryptionEnabled"] is True  # the account's, not overridden
    assert record.kms_key_id == "alias/from-document"
    assert kms.generate_data_key(KeyId="alias/from-document", NumberOfBytes=64)["Plaintext"]
    (info,) = ssm.describe_sessions(
        State="Active", Filters=[{"key": "SessionId", "value": session_id}]
    )["Sessions"]
    assert info["MaxSessionDuration"] == "90"
    code, message = refused(
        ssm.start_session,
        Target=DEFAULT_TARGET,
        DocumentName="Team-Shell",
        Parameters={"timeout": ["soon"]},
    )
    assert code == "InvalidParameters" and "not matching" in message


def test_start_session_with_a_noninteractive_document(emu: EmulatorThread, ssm: Any) -> None:
    ssm.create_document(Name="Tail-Log", Content=NONINTERACTIVE, DocumentType="Session")
    arn = f"arn:aws:ssm:us-east-1:{ACCOUNT}:document/Tail-Log"
    session_id = ssm.start_session(
        Target=DEFAULT_TARGET, DocumentName=arn, Parameters={"path": ["/var/log"]}
    )["SessionId"]
    record = emu.state.sessions[session_id]
    assert (record.document_name, record.session_type) == ("Tail-Log", "NonInteractiveCommands")
    assert record.properties == {}  # the agent sends null Properties for command sessions
    assert record.document_properties == {
        "linux": {
            "commands": "tail -n 10 /var/log/messages",
            "runAsElevated": False,
            "separateOutputStream": True,
        },
        "windows": {"commands": "Get-Content /var/log", "runAsElevated": False},
    }
    assert record.command == "tail -n 10 /var/log/messages"
    assert record.parameters == {"path": ["/var/log"], "lines": ["10"]}
    assert record.inputs["idleSessionTimeout"] == "20"  # the account's preferences
    assert record.kms_key_id is None


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        ({}, '"path" is required'),
        ({"path": ["/etc"]}, "not one of /var/log, /tmp"),
        ({"path": ["/tmp", "/var/log"]}, "expects one value"),
        ({"path": ["/tmp"], "lines": ["1000"]}, "not matching"),
        ({"path": ["/tmp"], "colour": ["red"]}, '"colour" is not defined in document Tail-Log'),
    ],
)
def test_start_session_bad_parameters(
    ssm: Any, parameters: dict[str, list[str]], fragment: str
) -> None:
    ssm.create_document(Name="Tail-Log", Content=NONINTERACTIVE, DocumentType="Session")
    code, message = refused(
        ssm.start_session, Target=DEFAULT_TARGET, DocumentName="Tail-Log", Parameters=parameters
    )
    assert code == "InvalidParameters" and fragment in message


def test_string_list_parameters(emu: EmulatorThread, ssm: Any) -> None:
    content = session_doc(
        sessionType="InteractiveCommands",
        parameters={"files": {"type": "StringList", "minItems": 1, "maxItems": 2}},
        properties={"linux": {"commands": "{{ files }}", "runAsElevated": False}},
    )
    ssm.create_document(Name="Cat-Files", Content=content, DocumentType="Session")
    session_id = ssm.start_session(
        Target=DEFAULT_TARGET, DocumentName="Cat-Files", Parameters={"files": ["a", "b"]}
    )["SessionId"]
    record = emu.state.sessions[session_id]
    assert record.document_properties["linux"]["commands"] == ["a", "b"]
    assert record.command == "a\nb"
    code, _ = refused(
        ssm.start_session,
        Target=DEFAULT_TARGET,
        DocumentName="Cat-Files",
        Parameters={"files": ["a", "b", "c"]},
    )
    assert code == "InvalidParameters"


def test_start_session_uses_the_latest_version(emu: EmulatorThread, ssm: Any) -> None:
    ssm.create_document(Name="Tail-Log", Content=NONINTERACTIVE, DocumentType="Session")
    ssm.update_document(Name="Tail-Log", Content=NONINTERACTIVE.replace("tail -n", "head -n"))
    ssm.update_document_default_version(Name="Tail-Log", DocumentVersion="1")
    parameters = {"path": ["/tmp"]}

    def command() -> str | None:
        response = ssm.start_session(
            Target=DEFAULT_TARGET, DocumentName="Tail-Log", Parameters=parameters
        )
        return emu.state.sessions[response["SessionId"]].command

    assert command() == "head -n 10 /tmp/messages"
    third = NONINTERACTIVE.replace("tail -n", "tail -qn")
    ssm.update_document(Name="Tail-Log", Content=third, DocumentVersion="$LATEST")
    assert command() == "tail -qn 10 /tmp/messages"  # the default version (1) plays no part


# -- the account's preferences ------------------------------------------------------------


def preferences(**inputs: Any) -> str:
    return session_doc(sessionType="Standard_Stream", inputs=inputs)


def test_preferences_apply_to_every_document(emu: EmulatorThread, ssm: Any, kms: Any) -> None:
    ssm.update_document(
        Name="SSM-SessionManagerRunShell",
        Content=preferences(
            idleSessionTimeout="45",
            maxSessionDuration="600",
            kmsKeyId="alias/account-key",
            runAsEnabled="true",
            runAsDefaultUser="ops",
        ),
        DocumentVersion="$LATEST",
    )  # as AWS's guide changes preferences: the default version stays 1
    ssm.create_document(Name="Team-Shell", Content=STREAM, DocumentType="Session")
    expected = {
        None: ("45", "600", "ops"),
        "AWS-StartPortForwardingSession": ("45", "600", "ops"),
        "AWS-StartInteractiveCommand": ("45", "600", "ops"),
        "Team-Shell": ("30", "90", "ec2-user"),  # the document's own inputs win
    }
    for document, (idle, longest, user) in expected.items():
        kwargs: dict[str, Any] = {"Target": DEFAULT_TARGET}
        if document is not None:
            kwargs["DocumentName"] = document
        if document == "AWS-StartInteractiveCommand":
            kwargs["Parameters"] = {"command": ["top"]}
        record = emu.state.sessions[ssm.start_session(**kwargs)["SessionId"]]
        inputs = record.inputs
        assert (inputs["idleSessionTimeout"], inputs["maxSessionDuration"]) == (idle, longest)
        assert inputs["runAsDefaultUser"] == user and inputs["runAsEnabled"] is True
        assert inputs["s3EncryptionEnabled"] is True  # left out of the new preferences
        wanted = "alias/from-document" if document == "Team-Shell" else "alias/account-key"
        assert record.kms_key_id == wanted
    assert kms.generate_data_key(KeyId="alias/account-key", NumberOfBytes=64)["Plaintext"]
    sessions = ssm.describe_sessions(State="Active")["Sessions"]
    assert {s["MaxSessionDuration"] for s in sessions} == {"600", "90"}


def test_preferences_document_can_be_deleted_and_created_again(
    emu: EmulatorThread, ssm: Any
) -> None:
    ssm.delete_document(Name="SSM-SessionManagerRunShell")
    record = emu.state.sessions[ssm.start_session(Target=DEFAULT_TARGET)["SessionId"]]
    assert record.document_name == "SSM-SessionManagerRunShell"
    assert record.inputs["idleSessionTimeout"] == "20"  # the built-in defaults
    code, _ = refused(
        ssm.create_document,
        Name="SSM-SessionManagerRunShell",
        Content=session_doc(sessionType="Port", properties={"portNumber": "22"}),
        DocumentType="Session",
    )
    assert code == "InvalidDocumentContent"
    ssm.create_document(
        Name="SSM-SessionManagerRunShell",
        Content=preferences(idleSessionTimeout="5"),
        DocumentType="Session",
    )
    record = emu.state.sessions[ssm.start_session(Target=DEFAULT_TARGET)["SessionId"]]
    assert record.inputs["idleSessionTimeout"] == "5"
