"""How the emulator's refusals are checked: the code is one botocore's model lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.exceptions
import botocore.session
import pytest

__all__ = ["refused"]

_MODEL = botocore.session.get_session().get_service_model("ssm")
#: Errors every awsJson operation may answer, listed or not.
_COMMON = {"ValidationException", "SerializationException"}


def refused(fn: Callable[..., Any], **kwargs: Any) -> tuple[str, str]:
    """(code, message) of a refused call; the code must be one the model lists for it."""
    with pytest.raises(botocore.exceptions.ClientError) as exc_info:
        fn(**kwargs)
    error = exc_info.value.response["Error"]
    code = str(error["Code"])
    name = exc_info.value.operation_name
    listed = {shape.name for shape in _MODEL.operation_model(name).error_shapes}
    assert code in listed | _COMMON, f"{name} does not list {code}"
    return code, str(error["Message"])
