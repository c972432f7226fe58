"""The answers of GET /healthz and GET /readyz."""

from __future__ import annotations

from typing import Literal

from ai_router.http_api.response_model import ResponseModel, omitted


class Health(ResponseModel):
    """The process is alive."""

    status: Literal["ok"] = "ok"


class ProviderReadiness(ResponseModel):
    ready: bool
    reason: str | None = omitted()  # why it is unusable: "OPENAI_API_KEY is not set"


class StateReadiness(ResponseModel):
    ready: bool
    reason: str | None = omitted()  # "state store unavailable: Redis at redis:6379: ..."


class Readiness(ResponseModel):
    """The config is loaded; each provider, and why it is unusable; the store of keys' limits
    (when keys are configured). Sent with 503 when no provider is usable or the store is not."""

    status: Literal["ready", "no provider is usable", "state store unavailable"]
    providers: dict[str, ProviderReadiness]
    state: StateReadiness | None = omitted()

    @classmethod
    def of(
        cls, reasons: dict[str, str | None], state_problem: str | None = None, keyed: bool = False
    ) -> Readiness:
        """From each provider's reason to be unusable (None: usable) and the state store's."""
        providers = {
            name: ProviderReadiness(ready=reason is None, reason=reason or None)
            for name, reason in reasons.items()
        }
        usable = any(provider.ready for provider in providers.values())
        state = StateReadiness(ready=state_problem is None, reason=state_problem) if keyed else None
        status: Literal["ready", "no provider is usable", "state store unavailable"] = (
            "no provider is usable" if not usable
            else "state store unavailable" if state_problem is not None
            else "ready"
        )
        return cls(status=status, providers=providers, state=state)

    @property
    def usable(self) -> bool:
        return self.status == "ready"
