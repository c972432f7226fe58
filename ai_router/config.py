"""Typed, validated settings, read from config.yaml and the environment.

The file keeps the original service's shape (`providers.<name>.default_model`,
`default_max_tokens`, `server.grpc_port`, `server.http_port`) and adds optional keys. Validation is
pydantic's: it gives every problem with its key path, which `ConfigError` turns into
`<file>: <key.path>: <what is wrong>` lines.

Environment overrides, applied after the file: HOST, GRPC_PORT, HTTP_PORT, GRPC_METRICS_PORT,
REPLICA_NAME; each provider's key from
its `api_key_env` (default `<NAME>_API_KEY`, so OPENAI_API_KEY and ANTHROPIC_API_KEY); each
provider's base URL from `<NAME>_BASE_URL` (so the SDKs' own OPENAI_BASE_URL and
ANTHROPIC_BASE_URL keep their meaning, and two OpenAI-compatible providers never share one).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    model_validator,
)

from ai_router.access.settings import AuthSettings, Price, StateSettings
from ai_router.providers.registry import PROVIDER_TYPES

DEFAULT_CONFIG_PATH = "config.yaml"
LOOPBACK_HOST = "127.0.0.1"

Port = int  # validated by the Field bounds where used


class ConfigError(Exception):
    """A config file or variable that cannot be used; `problems` are `key: what is wrong` lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderSettings(_Strict):
    name: str = ""
    type: str = ""
    default_model: str = Field(min_length=1)
    default_max_tokens: PositiveInt = 1024
    base_url: str | None = None
    api_key_env: str = ""
    api_key: SecretStr | None = Field(default=None, exclude=True)
    # The longest wait for a whole answer, or for the first token of a stream.
    timeout: PositiveFloat = 60.0
    # The longest gap between two chunks of a stream; None: `timeout`.
    stream_idle_timeout: PositiveFloat | None = None
    connect_timeout: PositiveFloat = 5.0
    # The router's own retries (the SDKs' are off): on 408, 409, 429, 5xx, 529, connection errors.
    max_retries: int = Field(default=2, ge=0, le=10)
    models: tuple[str, ...] | None = None
    # What an OpenAI-compatible server does differently (docs/PROVIDERS.md): the request fields
    # it does not take, each refused (a 400 naming it, before any attempt) or dropped; fields it
    # names otherwise (`max_completion_tokens: max_tokens`); headers it asks for; and whether it
    # needs a key at all (a local Ollama or vLLM does not).
    unsupported: dict[str, Literal["refuse", "drop"]] = Field(default_factory=dict)
    renamed: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    key_required: bool = True
    # Azure OpenAI (type: azure): a dated api-version for the deployment URLs (None: the v1
    # surface, /openai/v1/), the deployment serving each model name (default: the model's own
    # name), and what the key variable holds: an API key, or a Microsoft Entra ID token.
    api_version: str | None = None
    deployments: dict[str, str] = Field(default_factory=dict)
    auth: Literal["api-key", "entra-id"] = "api-key"
    # Amazon Bedrock (type: bedrock): the AWS region its requests are signed for and sent to
    # (default: AWS_REGION, else AWS_DEFAULT_REGION), and the profile of the AWS config files
    # whose credentials sign them (default: botocore's chain, AWS_PROFILE included).
    region: str | None = None
    profile: str | None = None

    @model_validator(mode="after")
    def _bedrock_region(self) -> ProviderSettings:
        if self.type == "bedrock" and not self.region:
            raise ValueError(
                f"providers.{self.name}.region: Amazon Bedrock needs an AWS region "
                "(us-east-1, say): set region, or AWS_REGION or AWS_DEFAULT_REGION"
            )
        return self

    @model_validator(mode="after")
    def _azure_endpoint(self) -> ProviderSettings:
        if self.type == "azure" and not self.base_url:
            variable = f"{_env_name(self.name)}_BASE_URL"
            raise ValueError(
                f"providers.{self.name}.base_url: Azure OpenAI needs the resource's endpoint "
                f"(https://NAME.openai.azure.com): set base_url, or {variable}"
            )
        if self.type == "azure" and not self.key_required:
            raise ValueError(
                f"providers.{self.name}.key_required: Azure OpenAI always takes a key or an "
                "Entra ID token"
            )
        return self

    @property
    def idle_timeout(self) -> float:
        return self.stream_idle_timeout or self.timeout

    def accepts_model(self, model: str) -> bool:
        return self.models is None or model in self.models or model == self.default_model


class ServerSettings(_Strict):
    host: str = LOOPBACK_HOST
    grpc_port: Port = Field(default=50051, ge=0, le=65535)
    http_port: Port = Field(default=8080, ge=0, le=65535)
    max_body_bytes: PositiveInt = 1024 * 1024
    # Slow or oversized requests (the HTTP server; 408 and 431 answers): the head (request line
    # and header fields) within http_head_timeout seconds of its first line, at most
    # http_max_head_bytes of it, no gap over http_body_idle_timeout in the body and all of it
    # within http_body_timeout of the head; at most
    # http_max_waiting_connections connections per worker waiting for a head, one closed beyond
    # (so that they never keep a health check out).
    http_head_timeout: PositiveFloat = 10.0
    http_body_idle_timeout: PositiveFloat = 10.0
    http_body_timeout: PositiveFloat = 60.0
    http_max_head_bytes: int = Field(default=65536, ge=1024)
    http_max_waiting_connections: PositiveInt = 1000
    # Web pages (their `Origin`) that may call the HTTP API from a browser; a request from any
    # other page is refused, so that a page cannot spend the providers' credit through a router
    # on the machine of whoever visits it. "*": any page.
    allowed_origins: tuple[str, ...] = ()
    # Generation requests (streams included) one HTTP worker process serves at once; beyond
    # this it answers 503 with Retry-After at once instead of queueing.
    http_max_concurrent: PositiveInt = 5000
    # How this replica names itself in responses (X-AI-Router-Replica, gRPC metadata), so an
    # operator behind a load balancer can tell which one answered. Default: the host name.
    replica_name: str = Field(default_factory=socket.gethostname)
    # gRPC: a call holds one pool thread to its end, a stream too, so the pool is sized in streams
    # (threads start as calls need them; what a held stream costs: docs/PERFORMANCE.md).
    grpc_max_workers: PositiveInt = 2048
    # Prometheus metrics of `ai-router grpc` run alone, at http://host:port/metrics; 0: none.
    # (`ai-router serve` sets none: its gRPC server's metrics are in the HTTP server's /metrics.)
    grpc_metrics_port: Port = Field(default=9464, ge=0, le=65535)
    # None: as many as the pool has threads, so an RPC is refused rather than queued.
    grpc_max_concurrent_rpcs: PositiveInt | None = None
    grpc_grace_seconds: PositiveFloat = 10.0
    # gunicorn's graceful_timeout: how long open HTTP requests and streams get after SIGTERM.
    http_grace_seconds: PositiveInt = 30
    # After SIGTERM, health says NOT_SERVING but calls are still served for this long.
    grpc_drain_seconds: float = Field(default=1.0, ge=0)

    @property
    def grpc_concurrency_limit(self) -> int:
        return self.grpc_max_concurrent_rpcs or self.grpc_max_workers

    @property
    def longest_stop_seconds(self) -> float:
        """The longest either server may take to stop gracefully."""
        return max(self.grpc_drain_seconds + self.grpc_grace_seconds, self.http_grace_seconds)


Strategy = Literal["fallback", "weighted", "least-busy", "lowest-latency"]


class TargetSettings(_Strict):
    """One target of an alias: `provider/model`, with per-target overrides."""

    model: str = Field(pattern=r"^[^/]+/.+$")
    weight: PositiveFloat = 1.0
    timeout: PositiveFloat | None = None
    max_retries: int | None = Field(default=None, ge=0, le=10)

    @property
    def provider(self) -> str:
        return self.model.partition("/")[0]

    @property
    def provider_model(self) -> str:
        return self.model.partition("/")[2]


class AliasSettings(_Strict):
    strategy: Strategy = "fallback"
    targets: tuple[TargetSettings, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _targets_as_mappings(cls, data: Any) -> Any:
        # A target may be written as a bare "provider/model" string.
        if isinstance(data, dict) and isinstance(data.get("targets"), list):
            targets = [{"model": t} if isinstance(t, str) else t for t in data["targets"]]
            data = {**data, "targets": targets}
        return data


class CooldownSettings(_Strict):
    """A target that fails `failures` times within `window_seconds` is skipped by its aliases
    for `seconds`, then takes one probe request before it gets traffic again."""

    failures: PositiveInt = 3
    window_seconds: PositiveFloat = 60.0
    seconds: PositiveFloat = 30.0


class ResponsesSettings(_Strict):
    """The Responses API's stored responses (`store`, `previous_response_id`), kept in the
    state store (`state:`) under the router key that made each one."""

    # How long a stored response can be retrieved or continued: OpenAI keeps them 30 days.
    # At least a minute (a next turn needs time to come), at most a year.
    retention_seconds: int = Field(default=30 * 86400, ge=60, le=365 * 86400)
    # One stored response, its whole conversation included (each one holds every earlier turn,
    # so that continuing it is one read): a larger one is refused by the store (InvalidRequest),
    # so that a conversation stops growing at this size instead of the store.
    max_stored_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)


class Settings(_Strict):
    server: ServerSettings = ServerSettings()
    providers: dict[str, ProviderSettings] = Field(min_length=1)
    # Public model names (aliases) -> their targets and the strategy that picks among them.
    models: dict[str, AliasSettings] = Field(default_factory=dict)
    cooldown: CooldownSettings = CooldownSettings()
    # Router keys, and where their counters live; prices per provider/model (USD per million
    # tokens) on top of the built-in table; a JSON-lines file of usage records.
    auth: AuthSettings = AuthSettings()
    state: StateSettings = StateSettings()
    prices: dict[str, Price] = Field(default_factory=dict)
    usage_log: str | None = None
    responses: ResponsesSettings = ResponsesSettings()
    source: str = Field(default="<defaults>", exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _name_providers(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("providers"), dict):
            data = {**data, "providers": _named_providers(data["providers"])}
        return data

    # The cross-field checks stop at the first problem here; `check_settings` collects them all.
    @model_validator(mode="after")
    def _check_provider_types(self) -> Settings:
        _raise_first(_provider_type_problems({n: p.type for n, p in self.providers.items()}))
        return self

    @model_validator(mode="after")
    def _check_open_gateway(self) -> Settings:
        _raise_first(_open_gateway_problems(self.server.host, self.auth))
        return self

    @model_validator(mode="after")
    def _check_alias_targets(self) -> Settings:
        _raise_first(_alias_target_problems(self.models, self.providers, list(self.providers)))
        return self

    def named_targets(self) -> frozenset[str]:
        """Every `provider/model` this config names: each provider's default and listed models,
        and every alias target. What a process keeps per target is kept for these only, since
        a provider without `models:` accepts any name a client makes up."""
        listed = {
            f"{name}/{model}"
            for name, provider in self.providers.items()
            for model in (provider.default_model, *(provider.models or ()))
        }
        return frozenset(listed | {t.model for alias in self.models.values() for t in alias.targets})


def _named_providers(providers: dict[Any, Any]) -> dict[Any, Any]:
    # A provider's name is its key in the file; its type defaults to that name, so that
    # `providers: {openai: ...}` needs no `type` while `providers: {local: {type: openai}}` works.
    named = {}
    for name, body in providers.items():
        if isinstance(body, dict):
            body = {"type": name, **body, "name": name}
            body.setdefault("api_key_env", _key_variable(name, body))
        named[name] = body
    return named


def _provider_type_problems(types: Mapping[str, str]) -> list[str]:
    known = ", ".join(sorted(PROVIDER_TYPES))
    return [
        f"providers.{name}.type: {type_name!r} is not a provider type; "
        f"set `type:` to one of {known}"
        for name, type_name in types.items()
        if type_name not in PROVIDER_TYPES
    ]


def _alias_target_problems(
    aliases: Mapping[str, AliasSettings],
    providers: Mapping[str, ProviderSettings],
    configured: list[str],
) -> list[str]:
    """`providers` are the valid ones among the `configured` names; a target of a configured
    but invalid provider is not judged (that provider's own problems are reported)."""
    problems = []
    for alias, settings in aliases.items():
        for index, target in enumerate(settings.targets):
            where = f"models.{alias}.targets[{index}]"
            provider = providers.get(target.provider)
            if target.provider not in configured:
                problems.append(
                    f"{where}: provider {target.provider!r} is not configured; "
                    f"providers: {', '.join(configured)}"
                )
            elif provider is not None and not provider.accepts_model(target.provider_model):
                problems.append(
                    f"{where}: provider {target.provider!r} does not offer model "
                    f"{target.provider_model!r}; add it to providers.{target.provider}.models"
                )
    return problems


def _open_gateway_problems(host: str, auth: AuthSettings) -> list[str]:
    """Without keys, the router serves anyone who can reach it: only on loopback, or when the
    operator says so."""
    if auth.keys or auth.allow_unauthenticated or _is_loopback(host):
        return []
    return [
        f"server.host: {host!r} is reachable from other machines and auth.keys is empty, so "
        "anyone could use the providers' keys: add keys under auth.keys, or set "
        "auth.allow_unauthenticated: true (or ALLOW_UNAUTHENTICATED=true) if something in front "
        "of the router authenticates"
    ]


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _raise_first(problems: list[str]) -> None:
    if problems:
        raise ValueError(problems[0])


def _key_variable(name: str, body: Mapping[str, Any]) -> str:
    """Where a provider's key is read: <NAME>_API_KEY; for Bedrock the variable AWS's SDKs read
    a Bedrock API key from (its AWS credentials come from botocore's own chain)."""
    if body.get("type", name) == "bedrock":
        return "AWS_BEARER_TOKEN_BEDROCK"
    return f"{_env_name(name)}_API_KEY"


def _env_name(provider_name: str) -> str:
    return provider_name.upper().replace("-", "_")


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the config file (`path`, else CONFIG_PATH, else ./config.yaml) and apply the
    environment. Raises ConfigError naming the file, the key and the problem."""
    env = os.environ if environ is None else environ
    source = _source(path, env)
    raw = _read_yaml(source)
    return settings_from_mapping(raw, env, source)


def check_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """`load_settings`, for `ai-router check-config`: its ConfigError lists every problem.

    pydantic reports all field problems at once but runs the cross-field checks (provider
    types, alias targets) only once every field is valid, and those stop at the first problem.
    Here they also run over each provider and alias that is valid on its own, so a broken
    provider hides neither a misspelt type elsewhere nor an alias aimed at nothing.
    """
    env = os.environ if environ is None else environ
    source = _source(path, env)
    data, problems = _environment_applied(dict(_read_yaml(source)), env)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems += [_describe(error) for error in exc.errors()]
        problems += _every_cross_field_problem(data)
    if problems:
        # The validators' first cross-field problem is also among all of them: list it once.
        raise ConfigError(source, list(dict.fromkeys(problems)))
    return settings.model_copy(update={"source": source})


def _every_cross_field_problem(data: Mapping[str, Any]) -> list[str]:
    raw_providers, raw_aliases = data.get("providers"), data.get("models")
    named = _named_providers(raw_providers) if isinstance(raw_providers, dict) else {}
    types = {
        name: body["type"]
        for name, body in named.items()
        if isinstance(body, dict) and isinstance(body.get("type"), str)
    }
    providers = _each_valid(ProviderSettings, named)
    aliases = _each_valid(AliasSettings, raw_aliases if isinstance(raw_aliases, dict) else {})
    return _provider_type_problems(types) + _alias_target_problems(
        aliases, providers, list(named)
    )


_Model = TypeVar("_Model", bound=BaseModel)


def _each_valid(model: type[_Model], raw: Mapping[Any, Any]) -> dict[str, _Model]:
    """The entries of `raw` that are valid `model`s; the others' problems are reported by the
    validation of the whole file."""
    valid = {}
    for name, body in raw.items():
        try:
            valid[str(name)] = model.model_validate(body)
        except ValidationError:
            continue
    return valid


def _source(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> str:
    return str(path or env.get("CONFIG_PATH") or DEFAULT_CONFIG_PATH)


def settings_from_mapping(
    raw: Mapping[str, Any], environ: Mapping[str, str], source: str = "<config>"
) -> Settings:
    data = _apply_environment(dict(raw), environ, source)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(error) for error in exc.errors()]) from None
    return settings.model_copy(update={"source": source})


def _read_yaml(source: str) -> dict[str, Any]:
    return parse_config(read_config_text(source), source)


def read_config_text(source: str) -> str:
    try:
        return Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, ["file not found; set CONFIG_PATH or create it"]) from None
    except OSError as exc:
        raise ConfigError(source, [f"cannot be read: {exc.strerror}"]) from None


def parse_config(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"is not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, ["must be a mapping with a `providers:` section"])
    return data


def _apply_environment(data: dict[str, Any], env: Mapping[str, str], source: str) -> dict[str, Any]:
    data, problems = _environment_applied(data, env)
    if problems:
        raise ConfigError(source, problems)
    return data


def _environment_applied(
    data: dict[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """`data` with the environment's overrides, and the variables that could not be applied."""
    server = dict(data.get("server") or {})
    problems = []
    for variable, key in (("HOST", "host"), ("REPLICA_NAME", "replica_name")):
        if env.get(variable):
            server[key] = env[variable]
    ports = ("GRPC_PORT", "grpc_port"), ("HTTP_PORT", "http_port")
    for variable, key in (*ports, ("GRPC_METRICS_PORT", "grpc_metrics_port")):
        if env.get(variable):
            try:
                server[key] = int(env[variable])
            except ValueError:
                problems.append(f"environment {variable}={env[variable]!r} is not a port number")
    data["server"] = server
    data["auth"] = _auth_environment(data.get("auth"), env)
    data["state"] = _state_environment(data.get("state"), env)

    providers = data.get("providers")
    if isinstance(providers, dict):
        data["providers"] = {
            name: _provider_environment(name, body, env) if isinstance(body, dict) else body
            for name, body in providers.items()
        }
    return data, problems


def _auth_environment(auth: Any, env: Mapping[str, str]) -> Any:
    """Router keys given by `key_env`, and the admin key, are read from the environment."""
    if auth is None:
        auth = {}
    if not isinstance(auth, dict):
        return auth
    auth = dict(auth)
    if env.get("ALLOW_UNAUTHENTICATED", "").lower() in ("1", "true", "yes"):
        auth["allow_unauthenticated"] = True
    if isinstance(auth.get("admin_key_env"), str) and env.get(auth["admin_key_env"]):
        auth["admin_key"] = env[auth["admin_key_env"]]
    if isinstance(auth.get("keys"), list):
        auth["keys"] = [
            {**key, "key": env[key["key_env"]]}
            if isinstance(key, dict) and isinstance(key.get("key_env"), str) and env.get(key["key_env"])
            else key
            for key in auth["keys"]
        ]
    return auth


def _state_environment(state: Any, env: Mapping[str, str]) -> Any:
    """REDIS_URL: the state in that Redis (replicas share it); STATE_PATH: the SQLite file."""
    if state is None:
        state = {}
    if not isinstance(state, dict):
        return state
    state = dict(state)
    if env.get("STATE_PATH"):
        state["path"] = env["STATE_PATH"]
    if env.get("REDIS_URL"):
        state["backend"] = "redis"
        state["url"] = env["REDIS_URL"]
    return state


def _provider_environment(name: str, body: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    body = dict(body)
    key_variable = body.get("api_key_env") or _key_variable(name, body)
    if env.get(key_variable):
        body["api_key"] = env[key_variable]
    if body.get("type", name) == "bedrock" and not body.get("region"):
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        if region:
            body["region"] = region
    base_url = env.get(f"{_env_name(name)}_BASE_URL")
    if base_url:
        body["base_url"] = base_url
    return body


def _describe(error: Mapping[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if message.startswith(("providers.", "models.", "server.")) or not location:
        return message
    return f"{location}: {message}"
