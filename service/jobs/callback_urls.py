"""Which `callback_url`s a deployment delivers webhooks to.

A URL is allowed when webhooks are configured (a signing secret and allowed hosts), its scheme is `http`
or `https`, its host is one of `NEURONLENS_WEBHOOK_ALLOWED_HOSTS` (a name or address, or `*.example.com`
for the subdomains of example.com), and every address the host resolves to is an ordinary one: never
link-local (169.254.0.0/16, fe80::/10, where cloud metadata services answer), a known metadata address,
unspecified, multicast or reserved, and loopback only when `NEURONLENS_WEBHOOK_ALLOW_LOOPBACK` says so.
The API checks at submit (422) and the delivery checks again before each attempt (a host may resolve
elsewhere since).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from service.settings import Settings

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2")
)
"""Cloud metadata services (AWS, GCP and Azure at 169.254.169.254, AWS over IPv6, Alibaba, ECS tasks)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefused(ValueError):
    """A `callback_url` this deployment does not deliver to; the message says why."""


def _host_allowed(host: str, allowed: list[str]) -> bool:
    host = host.lower().rstrip(".")
    for entry in (a.lower().rstrip(".") for a in allowed):
        if host == entry or (entry.startswith("*.") and host.endswith(entry[1:])):
            return True
    return False


def _address_refused(address: IPAddress, allow_loopback: bool) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return "an address no webhook goes to"
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an address names itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise CallbackRefused(f"its host {host!r} does not resolve ({exc})") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def check_callback_url(url: str, settings: Settings) -> None:
    """Raise :class:`CallbackRefused` (saying why) unless webhooks may go to ``url`` (module docstring)."""
    if settings.webhook_secret is None or not settings.webhook_allowed_hosts:
        raise CallbackRefused(
            "this deployment sends no webhooks (NEURONLENS_WEBHOOK_SECRET and "
            "NEURONLENS_WEBHOOK_ALLOWED_HOSTS are not both set)"
        )
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise CallbackRefused(f"not a URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused("give an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("a callback URL carries no credentials")
    host = parts.hostname
    if not _host_allowed(host, settings.webhook_allowed_hosts):
        raise CallbackRefused(
            f"host {host!r} is not one this deployment allows (NEURONLENS_WEBHOOK_ALLOWED_HOSTS)"
        )
    for address in resolve(host, port):
        reason = _address_refused(address, settings.webhook_allow_loopback)
        if reason is not None:
            raise CallbackRefused(f"host {host!r} resolves to {address}, {reason}")
