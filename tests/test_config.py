"""Reading config.yaml and the environment into typed settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_router.config import ConfigError, load_settings, settings_from_mapping
from support import REPO_ROOT

MINIMAL = {"providers": {"openai": {"default_model": "gpt-4o-mini"}}}


def test_the_repository_config_loads_with_the_original_shape() -> None:
    settings = load_settings(REPO_ROOT / "config.yaml", environ={})

    assert settings.server.host == "127.0.0.1"
    assert {"openai", "anthropic"} <= set(settings.providers)
    for name, provider in settings.providers.items():
        assert provider.type == name
        assert provider.default_model
        assert provider.default_max_tokens > 0
        assert provider.api_key is None


def test_config_path_comes_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text("providers:\n  openai:\n    default_model: m\nserver:\n  grpc_port: 6000\n")

    settings = load_settings(environ={"CONFIG_PATH": str(path)})

    assert settings.server.grpc_port == 6000
    assert settings.source == str(path)


def test_environment_overrides_ports_host_keys_and_base_urls() -> None:
    settings = settings_from_mapping(
        MINIMAL,
        {
            "GRPC_PORT": "7001",
            "HTTP_PORT": "7002",
            "HOST": "0.0.0.0",
            "ALLOW_UNAUTHENTICATED": "true",
            "OPENAI_API_KEY": "sk-1",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        },
    )

    assert (settings.server.grpc_port, settings.server.http_port) == (7001, 7002)
    assert settings.server.host == "0.0.0.0"
    provider = settings.providers["openai"]
    assert provider.api_key is not None and provider.api_key.get_secret_value() == "sk-1"
    assert provider.base_url == "http://127.0.0.1:9/v1"


def test_redis_url_puts_the_state_in_redis_and_state_path_moves_the_sqlite_file() -> None:
    in_redis = settings_from_mapping(MINIMAL, {"REDIS_URL": "redis://redis:6379/0"})
    moved = settings_from_mapping(
        {**MINIMAL, "state": {"path": "here.db"}}, {"STATE_PATH": "/var/lib/ai-router/state.db"}
    )

    assert (in_redis.state.backend, in_redis.state.url) == ("redis", "redis://redis:6379/0")
    assert (moved.state.backend, moved.state.path) == ("sqlite", "/var/lib/ai-router/state.db")
    assert settings_from_mapping(MINIMAL, {}).state.backend == "sqlite"


def test_an_openai_compatible_provider_has_its_own_variables() -> None:
    raw = {
        "providers": {
            "local-llm": {
                "type": "openai",
                "default_model": "meta-llama/Llama-3.1-8B",
                "base_url": "http://127.0.0.1:8000/v1",
            }
        }
    }

    settings = settings_from_mapping(
        raw, {"OPENAI_BASE_URL": "http://elsewhere/v1", "LOCAL_LLM_API_KEY": "k"}
    )

    provider = settings.providers["local-llm"]
    assert provider.type == "openai"
    assert provider.base_url == "http://127.0.0.1:8000/v1"  # OPENAI_BASE_URL is not its own
    assert provider.api_key_env == "LOCAL_LLM_API_KEY"
    assert provider.api_key is not None


def test_api_key_env_names_the_variable_to_read() -> None:
    raw = {"providers": {"openai": {"default_model": "m", "api_key_env": "TEAM_OPENAI_KEY"}}}

    settings = settings_from_mapping(raw, {"TEAM_OPENAI_KEY": "sk-team", "OPENAI_API_KEY": "x"})

    key = settings.providers["openai"].api_key
    assert key is not None and key.get_secret_value() == "sk-team"


def test_keys_never_appear_in_the_settings_repr() -> None:
    settings = settings_from_mapping(MINIMAL, {"OPENAI_API_KEY": "sk-very-secret"})

    assert "sk-very-secret" not in repr(settings)
    assert "sk-very-secret" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("raw", "environ", "expected"),
    [
        ({}, {}, "providers: Field required"),
        (
            {"providers": {"openai": {"default_model": "m", "timeout": "soon"}}},
            {},
            "providers.openai.timeout: Input should be a valid number",
        ),
        (
            {"providers": {"openai": {}}},
            {},
            "providers.openai.default_model: Field required",
        ),
        (
            {"providers": {"local": {"default_model": "m"}}},
            {},
            "providers.local.type: 'local' is not a provider type; set `type:` to one of",
        ),
        (
            {"providers": {"openai": {"default_model": "m", "colour": "red"}}},
            {},
            "providers.openai.colour: Extra inputs are not permitted",
        ),
        ({**MINIMAL, "server": {"grpc_port": 70000}}, {}, "server.grpc_port:"),
        (MINIMAL, {"HTTP_PORT": "eighty"}, "environment HTTP_PORT='eighty' is not a port number"),
    ],
)
def test_a_bad_config_names_the_file_the_key_and_the_problem(
    raw: dict[str, object], environ: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(raw, environ, source="bad.yaml")

    assert f"bad.yaml: {expected}" in str(caught.value)


def test_a_missing_or_unparsable_file_is_a_config_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("providers: [unclosed\n")

    with pytest.raises(ConfigError, match="file not found; set CONFIG_PATH"):
        load_settings(tmp_path / "absent.yaml", environ={})
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_settings(broken, environ={})
