"""What every third-party client module shares: the two models it reaches through the router (one
of each family, so each client is tried same-family and across families) and the simulator's
deterministic answers to predict what the client gets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from support import Simulator

ROUTER_KEY = "client-key"  # the router holds no client keys in these tests: any key passes


@dataclass(frozen=True)
class Model:
    """A model as a client names it through the router, and what the upstream calls it."""

    family: str  # the upstream's family: "openai" or "anthropic"
    upstream: str

    @property
    def name(self) -> str:
        return f"{self.family}/{self.upstream}"

    def reply(self, text: str) -> str:
        """The simulator's text answer to a last user turn of `text`."""
        return f"Simulated reply from {self.upstream}: {text}"

    def tool_said(self, result: str) -> str:
        """The simulator's text answer after a tool returned `result`."""
        return self.reply(f"tool said: {result}")


OPENAI = Model("openai", "gpt-4o-mini")
ANTHROPIC = Model("anthropic", "claude-3-5-haiku-20241022")


@pytest.fixture(params=[OPENAI, ANTHROPIC], ids=lambda model: f"{model.family}-model")
def model(request: pytest.FixtureRequest) -> Model:
    """Each model in turn: a client of one family meets its own and the other."""
    chosen: Model = request.param
    return chosen


def upstream_bodies(simulator: Simulator, path: str) -> list[dict[str, Any]]:
    """The bodies the upstream received on `path` (e.g. "/v1/messages"), in order."""
    return [entry["body"] for entry in simulator.requests() if entry["path"] == path]


def upstream_path(model: Model, responses: bool = False) -> str:
    """Where the upstream of `model` is reached: an OpenAI model on the endpoint the client used
    (relayed), an Anthropic model on its Messages API (translated)."""
    if model.family == "anthropic":
        return "/v1/messages"
    return "/v1/responses" if responses else "/v1/chat/completions"
