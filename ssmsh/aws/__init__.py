"""botocore at the edge: the Session Manager API, KMS, SigV4 and error mapping.

Every botocore failure is turned into :class:`~ssmsh.exceptions.AwsError` here,
once; nothing above this package imports botocore (nor boto3, which ssmsh does not need).
"""

from __future__ import annotations

from .errors import aws_error, map_aws_errors
from .sessions import INSTANCE_ID_RE, SsmSessions
from .settings import AwsSettings, StaticCredentials
from .signing import is_presigned, sign_upgrade

__all__ = [
    "INSTANCE_ID_RE",
    "AwsSettings",
    "SsmSessions",
    "StaticCredentials",
    "aws_error",
    "is_presigned",
    "map_aws_errors",
    "sign_upgrade",
]
