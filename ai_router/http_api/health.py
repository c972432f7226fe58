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


class Readiness(ResponseModel):
    """The config is loaded; each provider, and why it is unusable. Sent with 503 when no
    provider is usable."""

    status: Literal["ready", "no provider is usable"]
    providers: dict[str, ProviderReadiness]

    @classmethod
    def of(cls, reasons: dict[str, str | None]) -> Readiness:
        """From each provider's reason to be unusable (None: usable)."""
        providers = {
            name: ProviderReadiness(ready=reason is None, reason=reason or None)
            for name, reason in reasons.items()
        }
        usable = any(provider.ready for provider in providers.values())
        return cls(status="ready" if usable else "no provider is usable", providers=providers)

    @property
    def usable(self) -> bool:
        return self.status == "ready"
