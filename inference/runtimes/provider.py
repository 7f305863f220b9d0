"""Versions an external provider runs (modelmgr.providers): the worker proxies generation.

"Loading" one checks that the provider answers and still lists the model (the URL passes
the SSRF rules again, and the checked address is kept for every later request). It holds
no memory here. ``stream`` sends one generation to the provider, streamed (SSE for
OpenAI-compatible servers, NDJSON for Ollama), and yields its events as they come;
closing it closes the connection, which stops the provider's generation. Errors are
``modelmgr.providers.errors`` (502/504 naming the provider), never a bare exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np

from inference.errors import InvalidInput, LoadFailed
from inference.runtimes.base import LoadedModel
from inference.versions import ProviderSpec, provider_spec_get
from modelmgr.exceptions import ModelmgrError
from modelmgr.providers import protocol
from modelmgr.providers.errors import ProviderError, ProviderKeyRefused, ProviderUnreachable
from modelmgr.providers.transport import (
    Target,
    fetch_models,
    provider_target,
    ssl_context,
    status_error,
    timeout,
    transport_error,
)


class ProviderRuntime:
    name = "provider"

    def load_version(self, model_dir: Path | None, spec, device: str) -> ProvidedLM:
        if spec.provider is None:
            raise LoadFailed(f"{spec.ref} names no provider")
        try:
            target = provider_target(
                name=spec.provider.name,
                kind=spec.provider.kind,
                base_url=spec.provider.base_url,
                api_key=spec.provider.api_key,
            )
        except ModelmgrError as exc:
            raise LoadFailed(exc.detail) from None
        return ProvidedLM(spec.provider, target, spec.metadata or {}, version_id=spec.id)

    def load(self, model_dir, primary, signature, device):  # pragma: no cover - by spec
        raise LoadFailed("a provided version is loaded with its version spec")


class ProvidedLM(LoadedModel):
    """A language model another server runs; the OpenAI and Ollama routes proxy to it."""

    signature: dict = {"inputs": [], "outputs": []}
    tensor_refusal = (
        "this slot serves a language model run by a provider: use POST "
        "/v1/chat/completions or /v1/completions (or Ollama's /api/chat, /api/generate)"
    )
    memory_bytes = 0
    has_chat_template = True  # the provider applies its own template
    tokenizer = None
    dtype = ""

    def __init__(self, spec: ProviderSpec, target: Target, metadata: dict, *, version_id: int):
        self.version_id = version_id
        self.spec = spec
        self.target = target
        self.remote = spec.model
        self.provider = f"provider {spec.name} ({spec.kind})"
        self.device = "remote"
        self.context_length = int(metadata.get("context_length") or 0)
        self.config = {"model_type": spec.kind}
        self.eos_token_id = None

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise InvalidInput(self.tensor_refusal)

    def warm_up(self) -> None:
        """The provider answers, accepts the key and lists the model."""
        try:
            names = {m.name for m in fetch_models(self.target)}
        except ModelmgrError as exc:
            raise LoadFailed(exc.detail) from None
        if self.remote not in names:
            listed = ", ".join(sorted(names)[:10]) or "none"
            raise LoadFailed(
                f"provider {self.spec.name} no longer lists {self.remote!r} (it lists: "
                f"{listed}); discover its models again"
            )

    def unload(self) -> None:
        pass

    def _reread(self) -> bool:
        """Take the provider's URL and key from the registry when they changed since the
        load (an administrator fixed a wrong key); whether anything changed."""
        from django.db import connection

        try:
            spec = provider_spec_get(version_id=self.version_id)
        finally:
            connection.close()  # a pool thread: do not leave its connection open
        if spec is None or (spec.base_url, spec.api_key) == (
            self.spec.base_url,
            self.spec.api_key,
        ):
            return False
        try:
            self.target = provider_target(
                name=spec.name, kind=spec.kind, base_url=spec.base_url, api_key=spec.api_key
            )
        except ModelmgrError as exc:
            raise ProviderError(
                f"provider {spec.name}: its new URL is refused: {exc.detail}"
            ) from None
        self.spec = spec
        return True

    async def stream(self, call: protocol.Call) -> AsyncIterator[protocol.Event]:
        """The provider's events for ``call``, as they arrive. When the provider refuses
        the key or cannot be reached before anything came, the registry is read again: a
        key or URL changed since the load is used at once (one retry)."""
        started = False
        try:
            async for event in self._stream(call):
                started = True
                yield event
        except (ProviderKeyRefused, ProviderUnreachable):
            if started or not await asyncio.to_thread(self._reread):
                raise
            async for event in self._stream(call):
                yield event

    async def _stream(self, call: protocol.Call) -> AsyncIterator[protocol.Event]:
        target = self.target
        path = protocol.generate_path(target.kind, chat=call.chat)
        body = protocol.request_body(target.kind, self.remote, call)
        doing = f"POST {path}"
        try:
            async with (
                httpx.AsyncClient(
                    verify=ssl_context(),
                    trust_env=False,
                    follow_redirects=False,
                    timeout=timeout(),
                ) as client,
                client.stream(
                    "POST",
                    target.url(path),
                    json=body,
                    headers=target.headers(),
                    extensions=target.extensions,
                ) as response,
            ):
                if response.status_code >= 300:
                    content = await response.aread()
                    raise status_error(target, response.status_code, content, doing=doing)
                async for line in response.aiter_lines():
                    try:
                        event = protocol.parse_line(target.kind, line, chat=call.chat)
                    except ValueError as exc:
                        raise ProviderError(f"provider {target.name}: {exc}") from None
                    if event is None:
                        continue
                    if event.error:
                        raise ProviderError(
                            f"provider {target.name} failed during {doing}: {event.error}"
                        )
                    yield event
                    if event.done:
                        return
        except httpx.HTTPError as exc:
            raise transport_error(target, exc) from None
