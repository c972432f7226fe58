"""The request rules both native front doors share."""

from __future__ import annotations

import pytest

from ai_router.errors import InvalidRequest, UnknownParameter
from ai_router.native_request import RawMessage, build_chat_request, parse_parameters
from ai_router.types import Message, Sampling


def test_parameters_given_as_strings_get_their_proper_types() -> None:
    parsed = parse_parameters({"temperature": "0.25", "top_p": "1", "top_k": "40", "stop": "END"})

    assert parsed == {"temperature": 0.25, "top_p": 1.0, "top_k": 40, "stop": ("END",)}
    assert type(parsed["top_k"]) is int


def test_a_stop_parameter_may_be_a_json_list() -> None:
    assert parse_parameters({"stop": '["a", "b"]'}) == {"stop": ("a", "b")}
    assert parse_parameters({"stop": ["a", "b"]}) == {"stop": ("a", "b")}


@pytest.mark.parametrize(
    ("parameters", "error", "param"),
    [
        ({"warmth": "1"}, UnknownParameter, "parameters.warmth"),
        ({"temperature": "hot"}, InvalidRequest, "parameters.temperature"),
        ({"temperature": "nan"}, InvalidRequest, "parameters.temperature"),
        ({"temperature": True}, InvalidRequest, "parameters.temperature"),
        ({"top_k": "2.5"}, InvalidRequest, "parameters.top_k"),
        ({"stop": 5}, InvalidRequest, "parameters.stop"),
    ],
)
def test_unknown_or_malformed_parameters_name_the_key(
    parameters: dict[str, object], error: type[Exception], param: str
) -> None:
    with pytest.raises(error) as caught:
        parse_parameters(parameters)

    assert isinstance(caught.value, InvalidRequest) and caught.value.param == param


def test_system_and_developer_messages_join_the_system_prompt() -> None:
    request = build_chat_request(
        system="One.",
        messages=[
            RawMessage("system", "Two."),
            RawMessage("user", "hi"),
            RawMessage("developer", "Three."),
        ],
    )

    assert request.system == "One.\nTwo.\nThree."
    assert request.messages == (Message("user", "hi"),)


def test_typed_options_and_parameters_merge_but_may_not_repeat_a_key() -> None:
    request = build_chat_request(prompt="x", temperature=0.5, parameters={"top_k": "3"})

    assert request.sampling == Sampling(temperature=0.5, top_k=3)
    with pytest.raises(InvalidRequest, match="temperature is set both"):
        build_chat_request(prompt="x", temperature=0.5, parameters={"temperature": "0.5"})


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({}, "prompt"),
        ({"prompt": "x", "messages": [RawMessage("user", "y")]}, "prompt"),
        ({"messages": [RawMessage("system", "only a system prompt")]}, "prompt"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "temperature": 2.5}, "temperature"),
        ({"prompt": "x", "top_p": -0.1}, "top_p"),
        ({"prompt": "x", "top_k": 0}, "top_k"),
        ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"prompt": "x", "stop": [""]}, "stop"),
    ],
)
def test_invalid_requests_name_the_field(fields: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        build_chat_request(**fields)  # type: ignore[arg-type]

    assert caught.value.param == param
