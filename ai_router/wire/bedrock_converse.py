"""Amazon Bedrock's Converse API (bedrock-runtime 2023-09-30): the vocabulary of the wire format.

Spoken by the Bedrock provider and faked by the simulator; no front door accepts it, so nothing
is relayed in it. Shapes, URIs and error types: botocore's service model
(`botocore/data/bedrock-runtime/2023-09-30/service-2.json`); a stream is AWS's binary event
stream (`application/vnd.amazon.eventstream`), one message per ConverseStreamOutput member.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import quote

from ai_router.types import FinishReason

FAMILY: Final = "bedrock"
SIGNING_NAME: Final = "bedrock"  # SigV4's service name (the endpoint's prefix is bedrock-runtime)
DEFAULT_BASE_URL: Final = "https://bedrock-runtime.{region}.amazonaws.com"
CONVERSE: Final = "converse"
CONVERSE_STREAM: Final = "converse-stream"
# /model/{modelId}/converse(-stream), the modelId percent-encoded whole (":" and "/" included).
PATH_RE: Final = re.compile(r"^/model/([^/]+)/(converse|converse-stream)$")
EVENT_STREAM: Final = "application/vnd.amazon.eventstream"
ERROR_TYPE_HEADER: Final = "x-amzn-errortype"
REQUEST_ID_HEADER: Final = "x-amzn-requestid"

# Where credentials come from, as botocore's default chain reads them; a bearer token (a Bedrock
# API key) in its own variable is sent instead of a signature.
BEARER_TOKEN_ENV: Final = "AWS_BEARER_TOKEN_BEDROCK"
REGION_ENV: Final = ("AWS_REGION", "AWS_DEFAULT_REGION")
CREDENTIAL_ENV: Final = (
    "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    BEARER_TOKEN_ENV,
)  # fmt: skip
MISSING_CREDENTIALS: Final = (
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or " + BEARER_TOKEN_ENV + ")"
)

# The simulator's credentials: what it checks each signature against, what `ai-router serve`
# puts in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY when it serves against it, what tests sign with.
SIMULATOR_ACCESS_KEY_ID: Final = "AKIAAIROUTERSIMULATR"
SIMULATOR_SECRET_ACCESS_KEY: Final = "ai-router-simulator-secret-access-key"
SIMULATOR_API_KEY: Final = "bedrock-api-key-simulator"  # its Bedrock API key (a bearer token)

# Asked of an Anthropic model with stop sequences: which one ended the text (Converse's own
# stopReason names none), in additionalModelResponseFields.
STOP_SEQUENCE_PATH: Final = "/stop_sequence"
# A toolUseId (botocore's ToolUseId shape); another provider's call id may be longer (Gemini's
# carry a signature) and is then sent as a digest of itself, the same for the call and its result.
TOOL_USE_ID_RE: Final = re.compile(r"^[a-zA-Z0-9_.:-]{1,64}$")
USER: Final = "user"
MAX_TEMPERATURE: Final = 1.0
ASSISTANT: Final = "assistant"
IMAGE_FORMATS: Final = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
JSON_SCHEMA: Final = "json_schema"  # outputConfig.textFormat.type

# stopReason -> the router's finish reason. A model's malformed output fails the attempt
# (FAILED_OUTPUT, retried); the guardrail's and the content filter's are "content_filter".
STOP_REASONS: Final[dict[str, FinishReason]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
FAILED_OUTPUT: Final = frozenset({"malformed_model_output", "malformed_tool_use"})
STOP_REASON_OF: Final[dict[str, str]] = {
    "end": "end_turn", "stop_sequence": "stop_sequence", "max_tokens": "max_tokens", "tool_call": "tool_use",
}  # fmt: skip  # the simulator's finishes

# The error types of Converse and ConverseStream and their HTTP statuses (botocore's model), and
# the ones AWS's front end answers for every service before the request reaches Bedrock.
ERROR_STATUSES: Final[dict[str, int]] = {
    "AccessDeniedException": 403,
    "ThrottlingException": 429,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    "ValidationException": 400,
    "ModelNotReadyException": 429,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
}
AUTH_ERRORS: Final = frozenset({
    "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
    "IncompleteSignatureException", "MissingAuthenticationTokenException", "ExpiredTokenException",
})  # fmt: skip
# Types the simulator answers for a status it is told to fail with.
TYPE_OF_STATUS: Final[dict[int, str]] = {
    status: name for name, status in reversed(ERROR_STATUSES.items()) if name != "ModelStreamErrorException"
}

# OpenAI's reasoning efforts as Converse's own `outputConfig.effort` (low, medium, high, xhigh,
# max); "none" sends none. Claude thinks as its generation allows (Bedrock's "Adaptive thinking"
# page): from Claude 4.6 adaptive thinking steered by that effort (as the Anthropic provider asks
# for it); Claude 3.x and 4.0 to 4.5 only within a budget of tokens (`enabled`, at least 1,024 and
# under maxTokens), read off the effort, and no effort field.
EFFORTS: Final[dict[str, str]] = {
    "minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "max",
}  # fmt: skip
ADAPTIVE_THINKING: Final = {"type": "adaptive", "display": "summarized"}
MIN_THINKING_BUDGET: Final = 1024
THINKING_BUDGETS: Final[dict[str, int]] = {
    "minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768, "max": 65536,
}  # fmt: skip
# Claude models that think only within a budget: 3.x, and 4 (dated), 4.1 to 4.5.
_BUDGET_CLAUDE: Final = re.compile(r"claude-(3|(opus|sonnet|haiku)-4-(\d{8}|[0-5]-))")


def path(model: str, stream: bool) -> str:
    """The path of a call to `model`, which botocore's rest-json serializer sends as a URI label:
    percent-encoded whole, so that no "/" of an ARN or "?" of a client's name leaves it."""
    return f"/model/{quote(model, safe='')}/{CONVERSE_STREAM if stream else CONVERSE}"


def error_type(headers: Iterable[tuple[str, str]], body: Mapping[str, Any] | None = None) -> str:
    """The error's type: x-amzn-ErrorType without its namespace (after ":"), else the body's
    `__type` (AWS's JSON protocol) without its "namespace#"."""
    for name, value in headers:
        if name.lower() == ERROR_TYPE_HEADER:
            return value.partition(":")[0].strip()
    kind = (body or {}).get("__type")
    return kind.rpartition("#")[2] if isinstance(kind, str) else ""


def tool_use_id(call_id: str) -> str:
    """`call_id` as a toolUseId: itself when Bedrock takes it, else a digest of it."""
    if TOOL_USE_ID_RE.match(call_id):
        return call_id
    return "call_" + hashlib.sha256(call_id.encode()).hexdigest()[:40]


def stream_exception_type(exception: str) -> str:
    """A stream's `:exception-type` (the member name, "throttlingException") as its error type."""
    return exception[:1].upper() + exception[1:]


def finish_reason(stop_reason: str | None) -> FinishReason:
    return STOP_REASONS.get(stop_reason or "end_turn", "stop")


def usage(document: Any) -> tuple[int, int]:
    """(input, output) tokens of a TokenUsage; cache reads and writes are input too."""
    if not isinstance(document, dict):
        return 0, 0

    def count(key: str) -> int:
        value = document.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    cached = count("cacheReadInputTokens") + count("cacheWriteInputTokens")
    return count("inputTokens") + cached, count("outputTokens")


def model_vendor(model: str) -> str:
    """The vendor a model id names: "anthropic" for `anthropic.claude-...`, for an inference
    profile (`us.anthropic.claude-...`, `global.anthropic...`) and for an ARN ending in one."""
    name = model.rpartition("/")[2]
    parts = name.split(".")
    if len(parts) > 2 and len(parts[0]) <= 6 and parts[1] in ("anthropic", "meta", "amazon", "mistral",
                                                                "cohere", "ai21", "deepseek", "openai",
                                                                "qwen", "writer"):
        return parts[1]
    return parts[0]


def thinks_within_a_budget(model: str) -> bool:
    """Whether a Claude model takes thinking only as a budget of tokens (not adaptive)."""
    return _BUDGET_CLAUDE.search(model) is not None


def credentials_in_environment(env: Mapping[str, str]) -> bool:
    """Whether `env` names AWS credentials (or a Bedrock API key) botocore would find: what
    `ai-router serve` reads to decide against the simulator. Instance roles are not seen here."""
    return any(env.get(name) for name in CREDENTIAL_ENV)
