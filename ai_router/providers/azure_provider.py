"""Azure OpenAI: OpenAI's wire format (openai_provider.py) at a resource's own endpoint, each
model served by a deployment.

Two surfaces, chosen by `api_version`:
- none (the default, Microsoft's recommendation since August 2025): the v1 API,
  `{endpoint}/openai/v1/chat/completions`, the deployment named by the body's `model`, as the
  plain `openai.OpenAI` client reaches it;
- a dated version (`2024-10-21`, the last GA one): `{endpoint}/openai/deployments/{deployment}/
  chat/completions?api-version=...`, as `openai.AzureOpenAI` builds it from the body's `model`.
Either way the URL and headers are the SDK client's (upstream.sdk_request_head), rendered once
per deployment; the body's `model` is the deployment (`deployments:` maps model names to them,
else the model's own name is the deployment's). The credential is an API key, sent in `api-key`,
or (`auth: entra-id`) a Microsoft Entra ID token, sent as a bearer token.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import openai

from ai_router.call import Endpoint
from ai_router.providers.openai_provider import OpenAIProvider
from ai_router.providers.transport import Answer
from ai_router.providers.upstream import (
    UpstreamHTTP,
    UpstreamsOnDemand,
    rendering_only_http_client,
    sdk_request_head,
)

V1_PATH = "/openai/v1"
_MAX_HEADS = 256  # rendered request heads kept, by endpoint and deployment


class AzureOpenAIProvider(OpenAIProvider):
    default_base_url = ""  # the resource's endpoint is the operator's: config requires `base_url`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        # (endpoint, deployment) -> its URL and headers, rendered once; deployments whose
        # requests go to one URL share its upstream. Both bounded: deployments are named by
        # clients, and a provider without `models` takes any name.
        self._heads: dict[tuple[Endpoint, str], tuple[str, dict[str, str]]] = {}
        self._by_url = UpstreamsOnDemand()

    def deployment(self, model: str) -> str:
        return self.settings.deployments.get(model, model)

    def send(
        self,
        body: dict[str, Any],
        timeout: float | None,
        request_id: str,
        stream: bool = False,
        endpoint: Endpoint = "chat",
    ) -> Answer:
        model = body.get("model")
        if isinstance(model, str):
            body = {**body, "model": self.deployment(model)}
        return super().send(body, timeout, request_id, stream, endpoint)

    def sdk_client(self) -> Any:
        endpoint = (self.settings.base_url or "").rstrip("/")
        key = self.api_key or ""
        entra = self.settings.auth == "entra-id"
        if self.settings.api_version is None:
            # The v1 surface: the plain OpenAI client, which sends its key as a bearer token
            # (what an Entra ID token is); an API key goes in `api-key` instead (sdk_headers).
            return openai.OpenAI(
                api_key=key, base_url=endpoint + V1_PATH, max_retries=0,
                http_client=rendering_only_http_client(),
            )
        # Every argument explicit: the SDK would otherwise read AZURE_OPENAI_* variables.
        return openai.AzureOpenAI(
            azure_endpoint=endpoint,
            api_version=self.settings.api_version,
            api_key=None if entra else key,
            azure_ad_token=key if entra else None,
            max_retries=0,
            http_client=rendering_only_http_client(),
        )

    def sdk_headers(self) -> dict[str, Any]:
        if self.settings.api_version is None and self.settings.auth == "api-key":
            return {"authorization": openai.Omit(), "api-key": self.api_key or ""}
        return {}

    def _sdk_heads(self) -> dict[Endpoint, tuple[str, dict[str, str]]]:
        return {}  # the URL depends on the deployment: rendered when one is first used

    def upstream_for(self, endpoint: Endpoint, body: Mapping[str, Any]) -> UpstreamHTTP | None:
        path = {"chat": self.chat_path, **self.other_paths}.get(endpoint)
        if path is None or self.api_key is None:
            return None
        url, headers = self._head(endpoint, path, str(body.get("model") or ""))
        return self._by_url.get(url, lambda: UpstreamHTTP(self.failing, url, headers, self.connect))

    def _head(self, endpoint: Endpoint, path: str, deployment: str) -> tuple[str, dict[str, str]]:
        with self._lock:
            found = self._heads.get((endpoint, deployment))
        if found is not None:
            return found
        client = self.sdk_client()
        try:
            found = sdk_request_head(client, path, {"model": deployment}, self.sdk_headers())
        finally:
            client.close()
        with self._lock:
            if len(self._heads) >= _MAX_HEADS:
                del self._heads[next(iter(self._heads))]
            self._heads[(endpoint, deployment)] = found
        return found

    def close(self) -> None:
        self._by_url.close()
        super().close()
