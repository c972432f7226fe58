"""Azure OpenAI as the simulator speaks it: its URL shapes over the OpenAI wire format, and its
content-filter refusal.

    /openai/v1/<path>                                       the v1 surface; `model` names the deployment
    /openai/deployments/{deployment}/<path>?api-version=    a deployment; dated API versions
    /openai/<path>?api-version=                             the rest of the dated API (responses)

each stands for the OpenAI path `/v1/<path>`. The credential is `api-key`, or a bearer token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

AZURE_PREFIX = "/openai/"
_V1 = re.compile(r"^/openai/v1(?P<rest>/.+)$")
_DEPLOYMENT = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)(?P<rest>/.+)$")
_DATED = re.compile(r"^/openai(?P<rest>/.+)$")

# What Azure says when its filter blocks a prompt (HTTP 400).
FILTERED_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry."
)


@dataclass(frozen=True, slots=True)
class AzurePath:
    openai_path: str  # the OpenAI path it stands for, e.g. /v1/chat/completions
    deployment: str | None  # from the URL, on the deployment surface


def parse_azure_path(path: str, query: str) -> AzurePath | str:
    """The OpenAI path an Azure path stands for, or why Azure would answer 404."""
    match = _V1.match(path)
    if match:
        return AzurePath("/v1" + match["rest"], None)
    if not parse_qs(query).get("api-version"):
        return "Resource not found: a dated Azure OpenAI path needs ?api-version="
    match = _DEPLOYMENT.match(path)
    if match:
        return AzurePath("/v1" + match["rest"], match["deployment"])
    match = _DATED.match(path)
    assert match is not None  # every path under AZURE_PREFIX
    return AzurePath("/v1" + match["rest"], None)


def with_deployment(body: Any, deployment: str | None) -> Any:
    """On a deployment URL the deployment decides the model, whatever the body says."""
    if deployment is None or not isinstance(body, dict):
        return body
    return {**body, "model": deployment}


def content_filter_body(message: str | None) -> dict[str, Any]:
    return {
        "error": {
            "message": message or FILTERED_MESSAGE,
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {
                    "hate": {"filtered": True, "severity": "medium"},
                    "self_harm": {"filtered": False, "severity": "safe"},
                    "sexual": {"filtered": False, "severity": "safe"},
                    "violence": {"filtered": False, "severity": "safe"},
                },
            },
        }
    }
