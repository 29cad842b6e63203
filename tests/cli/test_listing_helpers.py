"""The listing commands' pieces: their filter names agree with botocore's SSM model,
WHEN values, durations, owners, tables, JSON."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from typing import Any

import botocore.session
import pytest

from ssmsh.aws.errors import affects_every_call
from ssmsh.cli import inventory, sessionlist
from ssmsh.cli.listing import api_time, duration, parse_when, table, to_json
from ssmsh.exceptions import AwsError, UsageError


@pytest.fixture(scope="module")
def model() -> Any:
    return botocore.session.get_session().get_service_model("ssm")


def test_session_filters_follow_the_model(model: Any) -> None:
    assert list(sessionlist.SESSION_STATUSES) == model.shape_for("SessionStatus").enum
    assert list(sessionlist.ACCESS_TYPES) == model.shape_for("AccessType").enum
    states = model.operation_model("DescribeSessions").input_shape.members["State"].enum
    assert states == ["Active", "History"]
    args = argparse.Namespace(
        history=False,
        since="2h",
        until="1h",
        owner="alice",
        status="Connected",
        session_id="alice-1",
        access_type="standard",
        limit=None,
    )
    state, filters = sessionlist.session_filters(args)
    keys = model.shape_for("SessionFilter").members["key"].enum
    assert state == "Active"
    assert {f["key"] for f in filters} | {"Target"} == set(keys)
    assert {"key": "AccessType", "value": "Standard"} in filters


def test_instance_filters_follow_the_model(model: Any) -> None:
    doc = model.shape_for("InstanceInformationStringFilter").members["Key"].documentation
    listed = re.search(r"Valid filter key values: ([^<]*)", doc)
    assert listed is not None
    documented = {k.strip().strip('"') for k in listed.group(1).split("|")}
    assert set(inventory.FILTER_FIELDS) <= documented
    fields = model.shape_for("InstanceInformation").members
    assert all(field in fields for field in inventory.FILTER_FIELDS.values())


def test_instance_filters_from_options() -> None:
    args = argparse.Namespace(
        filters=["PingStatus=ConnectionLost", "tag:team=ops"],
        tags=["env=prod", "env=dev", "role", "env=prod"],
        online=True,
    )
    assert inventory.instance_filters(args) == {
        "PingStatus": ["ConnectionLost", "Online"],
        "tag:team": ["ops"],
        "tag:env": ["prod", "dev"],
        "tag-key": ["role"],
    }


def test_when() -> None:
    now = dt.datetime(2024, 8, 29, 12, 0, tzinfo=dt.UTC)
    assert parse_when("30m", "--since", now) == now - dt.timedelta(minutes=30)
    assert parse_when("2h", "--since", now) == now - dt.timedelta(hours=2)
    assert parse_when("3d", "--since", now) == now - dt.timedelta(days=3)
    assert parse_when("1w", "--since", now) == now - dt.timedelta(weeks=1)
    assert parse_when("1h30m", "--since", now) == now - dt.timedelta(minutes=90)
    assert parse_when("45S", "--since", now) == now - dt.timedelta(seconds=45)
    assert api_time(parse_when("2024-08-29T10:00:00Z", "--since")) == "2024-08-29T10:00:00Z"
    assert api_time(parse_when("2024-08-29T10:00+02:00", "--since")) == "2024-08-29T08:00:00Z"
    naive = parse_when("2024-08-29", "--since")
    assert naive.tzinfo is not None  # local time
    assert naive.replace(tzinfo=None) == dt.datetime(2024, 8, 29)
    for bad in ("yesterday", "", "2h ago", "-1h", "m", "2024-02-30"):
        with pytest.raises(UsageError, match="--until expects a date or time"):
            parse_when(bad, "--until", now)


def test_durations_owners_and_failures() -> None:
    assert [duration(s) for s in (0, 45, 723, 3720, 273600, -5)] == [
        "0s",
        "45s",
        "12m03s",
        "1h02m",
        "3d04h",
        "0s",
    ]
    owner = sessionlist.short_owner
    assert owner("arn:aws:iam::123456789012:user/alice") == "alice"
    assert owner("arn:aws:sts::123456789012:assumed-role/Admin/alice") == "Admin/alice"
    assert owner("arn:aws:iam::123456789012:root") == "root"
    assert owner("alice") == "alice"
    assert affects_every_call(AwsError("cannot reach", "EndpointConnectionError"))
    assert affects_every_call(AwsError("expired", "ExpiredTokenException"))
    assert not affects_every_call(AwsError("denied", "AccessDeniedException"))


def test_table_and_json() -> None:
    text = table(("A", "LONGER", "LAST"), [["x", "", "a  b\nc"], ["wide-cell", "y", "z"]])
    assert text.splitlines() == [
        "A          LONGER  LAST",
        "x          -       a b c",
        "wide-cell  y       z",
    ]
    when = dt.datetime(2024, 8, 29, 12, 0, 1, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert json.loads(to_json([{"StartDate": when}])) == [
        {"StartDate": "2024-08-29T10:00:01.123+00:00"}
    ]
