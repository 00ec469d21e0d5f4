"""A benchmark handler whose module imports boto3 at init, as most Lambda functions do."""

from typing import Any

import boto3  # noqa: F401 - imported for its cold-start cost, like a typical function


def echo(event: Any, context: Any) -> Any:
    return event
