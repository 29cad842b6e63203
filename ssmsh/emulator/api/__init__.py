"""The emulator's AWS API (SSM and KMS over awsJson1.1), laid out by service area.

- ``dispatch.py``: :class:`ApiHandler`, the HTTP handler: SigV4, routing, validation,
  AWS-shaped errors;
- ``registry.py``: how service areas register their operations;
- ``validation.py``: request checks against botocore's service models;
- ``awsjson.py``: typed member access, paging (NextToken) and filters, shared by all;
- one module per service area: ``sessions``, ``instances``, ``documents``, ``commands``
  (Run Command), ``kms``.
"""

from __future__ import annotations

from .dispatch import CONTENT_TYPE, ApiHandler

__all__ = ["CONTENT_TYPE", "ApiHandler"]
