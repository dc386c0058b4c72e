"""Which address a connection counts as: its peer, or behind a trusted proxy the client it forwards."""

from __future__ import annotations

import functools
import ipaddress

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def trusted_networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    """``[server] trusted_proxies`` (IPs or CIDRs, checked by the config loader) as networks."""
    return tuple(ipaddress.ip_network(n, strict=False) for n in trusted)


def is_trusted(address: str, nets: tuple[Network, ...]) -> bool:
    """Whether ``address`` is one of the trusted proxies (an unparsable address never is)."""
    if not nets or not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in nets)


def client_address(request: web.Request, trusted: tuple[str, ...]) -> str:
    """The address the per-address limits count: the peer address, or, when the peer is a trusted
    proxy (``[server] trusted_proxies``), the nearest X-Forwarded-For hop that is not one."""
    remote = request.remote or ""
    if not trusted:
        return remote
    nets = trusted_networks(trusted)
    if not is_trusted(remote, nets):
        return remote  # X-Forwarded-For from anyone else is whatever the client wrote: not read
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", ()) for h in v.split(",") if h.strip()]
    for hop in reversed(hops):  # appended by each proxy in turn: the rightmost untrusted one is the client
        if not is_trusted(hop, nets):
            return hop[:64]
    return hops[0][:64] if hops else remote
