"""What can go wrong talking to a provider, as the HTTP status a client should see.

The provider is upstream of modelmgr: when it is down, slow or refuses our key, that is
a bad gateway (502) or a gateway timeout (504), never modelmgr's own 500.
"""

from __future__ import annotations

from modelmgr.exceptions import ModelmgrError, WorkerUnavailable


class ProviderError(ModelmgrError):
    """The provider did not give a usable answer."""

    status = 502


class ProviderUnreachable(ProviderError):
    """No connection (down, refused, DNS, TLS)."""


class ProviderKeyRefused(ProviderError):
    """401/403: the stored API key is wrong or lacks access."""


class ProviderTimeout(ProviderError):
    status = 504


class ProviderBusy(WorkerUnavailable):
    """429/503 from the provider: retry later (503 with Retry-After)."""


class ProviderRefusedRequest(ModelmgrError):
    """The provider refused the request's parameters (its 400/422): the client's fault."""

    status = 400
