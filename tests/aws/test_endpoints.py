"""The trimmed endpoints data resolves ssmsh's services exactly as botocore's full file."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.config import Config

from ssmsh.aws.settings import (
    ENDPOINT_SERVICES,
    AwsSettings,
    StaticCredentials,
    _botocore_session,
)

REGIONS = ["us-east-1", "eu-central-1", "ap-southeast-2", "cn-north-1", "us-gov-west-1"]


def _client(session: botocore.session.Session, service: str, region: str, fips: bool) -> Any:
    return session.create_client(
        service,
        region_name=region,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(use_fips_endpoint=fips),
    )


def _where(client: Any) -> tuple[str, str, str, str]:
    signer = client._request_signer
    return (
        client.meta.endpoint_url,
        client.meta.partition,
        signer._region_name,
        signer._signing_name,
    )


@pytest.mark.parametrize("fips", [False, True])
@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("service", sorted(ENDPOINT_SERVICES))
def test_trimmed_endpoints_resolve_like_the_full_file(
    service: str, region: str, fips: bool
) -> None:
    full = botocore.session.Session()
    trimmed = _botocore_session(isolated=True)
    assert _where(_client(trimmed, service, region, fips)) == _where(
        _client(full, service, region, fips)
    )


def test_only_the_needed_services_are_kept() -> None:
    loader = _botocore_session(isolated=True).get_component("data_loader")
    data = loader.load_data("endpoints")
    for partition in data["partitions"]:
        assert set(partition["services"]) <= ENDPOINT_SERVICES
        assert partition["regions"] and partition["dnsSuffix"]
    full = botocore.session.Session().get_component("data_loader").load_data("endpoints")
    assert len(data["partitions"]) == len(full["partitions"])


def test_clients_still_work_through_settings() -> None:
    settings = AwsSettings(
        region="eu-west-1", credentials=StaticCredentials("AKIDEXAMPLE", "secret"), isolated=True
    )
    session = settings.new_session()
    ssm = settings.client(session, "ssm")
    assert ssm.meta.endpoint_url == "https://ssm.eu-west-1.amazonaws.com"
    assert settings.client(session, "kms").meta.region_name == "eu-west-1"
