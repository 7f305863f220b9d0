"""Reaching a provider: through the import guard (SSRF rules), pinned to the checked address.

``provider_target`` checks the base URL with ``modelmgr.imports.netguard.guard_url`` (the
same allow-list and private-address rules as imports) and keeps the address it checked:
every request goes to that address with the original Host header and TLS server name,
so a DNS answer that changes later cannot send the API key somewhere unchecked. Errors
become ``modelmgr.providers.errors`` (502/504 with a detail naming the provider).
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass

import httpx
from django.conf import settings

from modelmgr.exceptions import ModelmgrError
from modelmgr.imports import netguard
from modelmgr.providers import protocol
from modelmgr.providers.errors import (
    ProviderBusy,
    ProviderError,
    ProviderKeyRefused,
    ProviderRefusedRequest,
    ProviderTimeout,
    ProviderUnreachable,
)


class ProviderURLRefused(ModelmgrError):
    """The base URL is malformed (400) or its host is refused by the SSRF rules (422)."""


@dataclass(frozen=True)
class Target:
    name: str
    kind: str
    base_url: str  # as registered (normalized); what messages show
    api_key: str
    pinned_base: str  # the same URL with the checked address as its host
    host: str
    host_header: str

    def url(self, path: str) -> str:
        return self.pinned_base + path

    def headers(self) -> dict[str, str]:
        return {**protocol.headers(self.api_key), "Host": self.host_header}

    @property
    def extensions(self) -> dict:
        return {"sni_hostname": self.host}


def guard_base_url(kind: str, raw: str) -> tuple[str, netguard.GuardedURL]:
    """The normalized base URL and the guard's checked address; 400/422 naming the problem."""
    if kind not in protocol.KINDS:
        raise ProviderURLRefused(f"kind must be one of: {', '.join(protocol.KINDS)}")
    if not isinstance(raw, str) or not raw.strip():
        raise ProviderURLRefused("base_url is required (an http:// or https:// address)")
    base = protocol.normalize_base(kind, raw)
    try:
        guarded = netguard.guard_url(base)
    except ModelmgrError as exc:
        refusal = ProviderURLRefused(f"provider URL refused: {exc.detail}")
        refusal.status = exc.status
        raise refusal from None
    if guarded.url.query or guarded.url.fragment:
        raise ProviderURLRefused("base_url must not carry a query or a fragment")
    return base, guarded


def provider_target(*, name: str, kind: str, base_url: str, api_key: str) -> Target:
    base, guarded = guard_base_url(kind, base_url)
    return Target(
        name=name,
        kind=kind,
        base_url=base,
        api_key=api_key,
        pinned_base=str(guarded.pinned_url).rstrip("/"),
        host=guarded.host,
        host_header=guarded.host_header,
    )


@functools.cache
def ssl_context() -> ssl.SSLContext:
    from modelmgr.imports.fetch import ssl_context as import_ssl_context

    return import_ssl_context()


def timeout(read: float | None = None) -> httpx.Timeout:
    return httpx.Timeout(
        read if read is not None else settings.MODELMGR_PROVIDER_TIMEOUT_S,
        connect=settings.MODELMGR_PROVIDER_CONNECT_TIMEOUT_S,
    )


def transport_error(target: Target, exc: httpx.HTTPError) -> ProviderError:
    if isinstance(exc, httpx.TimeoutException):
        limit = (
            settings.MODELMGR_PROVIDER_CONNECT_TIMEOUT_S
            if isinstance(exc, httpx.ConnectTimeout)
            else settings.MODELMGR_PROVIDER_TIMEOUT_S
        )
        return ProviderTimeout(
            f"provider {target.name} ({target.base_url}) did not answer within {limit:g} s "
            "(MODELMGR_PROVIDER_TIMEOUT_S / MODELMGR_PROVIDER_CONNECT_TIMEOUT_S)"
        )
    reason = str(exc) or type(exc).__name__
    return ProviderUnreachable(
        f"provider {target.name} ({target.base_url}) is unreachable: {reason}"
    )


def status_error(target: Target, status: int, body: bytes, *, doing: str) -> ModelmgrError:
    """The error for a provider's non-2xx answer to ``doing`` ("GET /models")."""
    message = protocol.error_message(body) or "(no message)"
    said = f"provider {target.name} answered {doing} with {status}: {message}"
    if status in (401, 403):
        return ProviderKeyRefused(
            f"provider {target.name} refused the API key ({status}: {message}); "
            "check the key registered for it"
        )
    if 300 <= status < 400:
        return ProviderError(
            f"provider {target.name} redirected {doing} ({status}); redirects are not "
            "followed: register the final URL"
        )
    if status in (429, 503):
        return ProviderBusy(said)
    if status in (400, 422):
        return ProviderRefusedRequest(said)
    return ProviderError(said)


def fetch_models(target: Target) -> list[protocol.RemoteModel]:
    """Ask the provider for its models (blocking)."""
    path = protocol.models_path(target.kind)
    doing = f"GET {path}"
    try:
        with httpx.Client(
            verify=ssl_context(), trust_env=False, follow_redirects=False, timeout=timeout()
        ) as client:
            response = client.get(
                target.url(path), headers=target.headers(), extensions=target.extensions
            )
    except httpx.HTTPError as exc:
        raise transport_error(target, exc) from None
    if response.status_code >= 300:
        raise status_error(target, response.status_code, response.content, doing=doing)
    try:
        return protocol.parse_models(target.kind, response.json())
    except ValueError as exc:
        raise ProviderError(
            f"provider {target.name} answered {doing} with something that is not a "
            f"{target.kind} model list: {exc}"
        ) from None
