"""The client's address behind reverse proxies: X-Forwarded-For is believed only from trusted proxies.

Anyone can send X-Forwarded-For, so it is read only when the direct peer is a configured trusted proxy
(`trusted_proxies`, addresses or networks; empty by default). The list is read from the right: each entry
was appended by the hop before it, and the first address that is not itself a trusted proxy is the
client. A malformed entry stops the walk at the last address known good.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Bounds the work on a hostile header: more hops than this are not followed.
MAX_HOPS = 20


def parse_networks(entries: Iterable[str]) -> list[IPNetwork]:
    """Networks from addresses or CIDR ranges; raises ValueError naming a malformed entry."""
    networks: list[IPNetwork] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not an IP address or network") from exc
    return networks


class TrustedProxies:
    """Which peers may tell the client's address."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.networks = parse_networks(entries)

    def trusts(self, address: str) -> bool:
        """Whether `address` is a trusted proxy."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str) -> str:
        """The client's address, for a request from `peer` carrying this X-Forwarded-For value."""
        if not self.trusts(peer):
            return peer
        client = peer
        hops = [hop.strip() for hop in forwarded_for.split(",")][-MAX_HOPS:]
        for hop in reversed(hops):
            try:
                address = str(ipaddress.ip_address(hop))
            except ValueError:
                break
            client = address
            if not self.trusts(address):
                break
        return client


class ForwardedClient:
    """ASGI middleware: sets the request's client address from a trusted proxy's X-Forwarded-For, so
    every surface (audit log, login throttle) sees the real client."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] in {"http", "websocket"} and client and self.trusted.trusts(client[0]):
            values = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
            if values:
                scope = dict(scope, client=(self.trusted.client(client[0], ",".join(values)), client[1]))
        await self.app(scope, receive, send)
