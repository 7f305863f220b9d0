"""Which URLs an import may fetch: scheme, host allow-list and SSRF address checks.

The guard resolves the host once and hands back the checked addresses; the fetcher
connects to exactly that address (``GuardedURL.pinned_url``) while sending the original
Host header and TLS server name, so a DNS answer that changes between the check and the
connection (DNS rebinding) cannot reach an address that was never checked.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import httpx
from django.conf import settings

from modelmgr.exceptions import ModelmgrError
from modelmgr.imports.addresses import own_listener_ports, parse_private_entry

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
URL_MAX_LENGTH = 2000

# Cloud instance metadata services hand out credentials: even MODELMGR_IMPORT_ALLOW_PRIVATE
# does not open them; only an explicit ALLOWED_PRIVATE_HOSTS entry does.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")


class BadImportURL(ModelmgrError):
    """The URL is malformed or not http(s)."""

    status = 400


class ImportRefused(ModelmgrError):
    """The URL is well-formed but policy forbids fetching it (allow-list, SSRF)."""

    status = 422


class HostUnresolved(ImportRefused):
    """The host has no address right now (maybe only for now: DNS can hiccup)."""


@dataclass(frozen=True)
class GuardedURL:
    url: httpx.URL
    host: str  # ASCII (IDNA) host name or IP literal, without brackets
    address: IPAddress  # the checked address the connection must go to

    @property
    def pinned_url(self) -> httpx.URL:
        return self.url.copy_with(host=str(self.address))

    @property
    def host_header(self) -> str:
        return self.url.netloc.decode("ascii")


def parse_import_url(raw: str) -> httpx.URL:
    """Parse and check the form of ``raw``: http(s), a host, no credentials."""
    if not isinstance(raw, str) or not raw.strip():
        raise BadImportURL("url is required (an http:// or https:// address)")
    raw = raw.strip()
    if len(raw) > URL_MAX_LENGTH:
        raise BadImportURL(f"url is longer than {URL_MAX_LENGTH} characters")
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise BadImportURL(f"url {raw!r} is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise BadImportURL(
            f"url scheme {url.scheme or '(none)'!r} is not allowed; use http:// or https://"
        )
    if not url.raw_host:
        raise BadImportURL(f"url {raw!r} has no host")
    if url.userinfo:
        raise BadImportURL(
            "credentials in the URL are not accepted (they would be stored and shown); "
            "use a URL that needs none, such as a pre-signed link"
        )
    return url


def _ascii_host(url: httpx.URL) -> str:
    return url.raw_host.decode("ascii").lower().rstrip(".")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def host_matches(host: str, patterns: list[str], addresses: list[IPAddress] = ()) -> bool:
    """Whether ``host`` (or every one of its ``addresses``) matches an entry of ``patterns``.

    Entries: an exact host name (``models.example.com``), ``*.example.com`` (any
    subdomain, not the apex), or an IP / CIDR (``10.1.0.0/16``) that every address of
    the host must fall in.
    """
    host = host.lower().rstrip(".")
    candidates = list(addresses) or ([_literal(host)] if _literal(host) else [])
    for raw in patterns:
        pattern = raw.strip().lower().rstrip(".").strip("[]")
        if not pattern:
            continue
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
            continue
        network = _network(pattern)
        if network is not None:
            if candidates and all(_in_network(a, network) for a in candidates):
                return True
            continue
        if host == pattern:
            return True
    return False


def _network(pattern: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(pattern, strict=False)
    except ValueError:
        return None


def _in_network(address: IPAddress, network) -> bool:
    return any(
        candidate.version == network.version and candidate in network
        for candidate in (address, _unwrap(address))
    )


def _unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def address_problem(address: IPAddress) -> tuple[str, bool] | None:
    """Why ``address`` is not a public unicast address, or None when it is.

    Returns (reason, private): ``private`` problems (private, loopback, link-local,
    shared/CGNAT, site-local) may be allowed by settings; the others never are.
    An IPv6 address that carries an IPv4 one (IPv4-mapped, 6to4, Teredo, NAT64) is
    judged by the IPv4 address it leads to.
    """
    ip = _unwrap(address)
    v4 = isinstance(ip, ipaddress.IPv4Address)
    if ip.is_unspecified:
        return "an unspecified address", False
    if ip.is_multicast:
        return "a multicast address", False
    if v4 and ip == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address", False
    if ip.is_loopback:
        return "a loopback address", True
    if ip.is_link_local:
        return "a link-local address", True
    if v4 and ip in _CGNAT:
        return "a shared (CGNAT) address", True
    if not v4 and ip.is_site_local:
        return "a site-local address", True
    if ip.is_reserved:
        return "a reserved address", False
    if ip.is_private:
        return "a private address", True
    if not ip.is_global:
        return "a non-public address", False
    return None


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostUnresolved(f"host {host!r} does not resolve: {exc}") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        # Drop an IPv6 zone id ("fe80::1%eth0"): the address itself is what is judged.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise HostUnresolved(f"host {host!r} has no addresses")
    return addresses


def _allow_list_refusal(host: str) -> ImportRefused:
    allowed = settings.MODELMGR_IMPORT_ALLOWED_HOSTS
    return ImportRefused(
        f"host {host!r} is not in the import allow-list "
        f"(MODELMGR_IMPORT_ALLOWED_HOSTS: {', '.join(allowed)})"
    )


def check_host_allowed(url: httpx.URL) -> str:
    """Refuse a host outside MODELMGR_IMPORT_ALLOWED_HOSTS before any DNS lookup.

    CIDR entries need the host's addresses, so with any CIDR in the list a name that
    matches no name entry is decided after resolution (in ``guard_url``).
    """
    host = _ascii_host(url)
    allowed = settings.MODELMGR_IMPORT_ALLOWED_HOSTS
    has_cidr = any(_network(entry.strip().strip("[]")) for entry in allowed)
    if allowed and not has_cidr and not host_matches(host, allowed):
        raise _allow_list_refusal(host)
    return host


def guard_url(url: httpx.URL | str) -> GuardedURL:
    """Check ``url`` against every rule and pick the address to connect to.

    1. Parse: http(s) only, a host, no credentials.
    2. The host must match MODELMGR_IMPORT_ALLOWED_HOSTS when that list is set.
    3. Resolve the host; every address must be public unicast, unless private ones are
       allowed (MODELMGR_IMPORT_ALLOW_PRIVATE, or the host / its addresses listed with
       the URL's port in MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS). Metadata addresses
       need an explicit entry; unspecified, multicast, broadcast and reserved addresses
       are never allowed, nor a private address on one of modelmgr's own ports.
    4. Return the first address: the connection is pinned to it.
    """
    url = parse_import_url(str(url))
    host = check_host_allowed(url)
    default_port = 443 if url.scheme == "https" else 80
    port = url.port or default_port
    addresses = resolve_host(host, port)
    allowed = settings.MODELMGR_IMPORT_ALLOWED_HOSTS
    if allowed and not host_matches(host, allowed, addresses):
        raise _allow_list_refusal(host)
    listed_private = _listed_private(host, addresses, port, default_port)
    own = own_listener_ports().get(port)
    for address in addresses:
        if _unwrap(address) in METADATA_ADDRESSES and not listed_private:
            raise ImportRefused(_refusal(host, address, "a cloud metadata address"))
        problem = address_problem(address)
        if problem is None:
            continue
        reason, private = problem
        if not private:
            raise ImportRefused(_refusal(host, address, reason, fixable=False))
        if own is not None:
            raise ImportRefused(
                f"imports from {host} port {port} are refused: it is {reason} and port "
                f"{port} is where {own} listens (modelmgr's own ports are never importable)"
            )
        if not (listed_private or settings.MODELMGR_IMPORT_ALLOW_PRIVATE):
            raise ImportRefused(_refusal(host, address, reason, port=port))
    return GuardedURL(url=url, host=host, address=addresses[0])


def _listed_private(host: str, addresses: list[IPAddress], port: int, default_port: int) -> bool:
    """Whether an ALLOWED_PRIVATE_HOSTS entry names this host (or its addresses) and port."""
    for raw in settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS:
        entry = parse_private_entry(raw)
        if entry.pattern and entry.allows_port(port, default_port):
            if host_matches(host, [entry.pattern], addresses):
                return True
    return False


def _refusal(
    host: str, address: IPAddress, reason: str, *, fixable: bool = True, port: int | None = None
) -> str:
    shown = host if host == str(address) else f"{host!r} ({address})"
    where = f" port {port}" if port is not None else ""
    text = f"imports from {shown}{where} are refused: it is {reason}"
    if fixable:
        text += (
            "; an administrator can allow it with MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS "
            "(host:port entries)"
        )
    return text
