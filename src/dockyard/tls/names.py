"""The DNS names and IP addresses a certificate is for, and whether a host is among them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cryptography import x509

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALWAYS_DNS = ("localhost",)
ALWAYS_IP: tuple[IPAddress, ...] = (ipaddress.IPv4Address("127.0.0.1"),)


@dataclass(frozen=True)
class SubjectNames:
    """The subjectAltName entries of a certificate: DNS names and IP addresses, in order."""

    dns: tuple[str, ...]
    ips: tuple[IPAddress, ...]

    @classmethod
    def build(cls, hosts: list[str], ips: list[str]) -> SubjectNames:
        """Names from user input, with localhost and 127.0.0.1 always added.

        A `--host` that is an IP address is treated as one, since that is what the user means.
        Raises ValueError with a readable message for a malformed name or address.
        """
        dns: list[str] = []
        addresses: list[IPAddress] = []
        for raw in ips:
            try:
                addresses.append(ipaddress.ip_address(raw.strip()))
            except ValueError:
                raise ValueError(f"{raw!r} is not an IP address") from None
        for raw in hosts:
            host = raw.strip().lower().rstrip(".")
            try:
                addresses.append(ipaddress.ip_address(host.strip("[]")))
                continue
            except ValueError:
                pass
            dns.append(_check_dns_name(host))
        dns.extend(ALWAYS_DNS)
        addresses.extend(ALWAYS_IP)
        return cls(tuple(dict.fromkeys(dns)), tuple(dict.fromkeys(addresses)))

    @classmethod
    def of(cls, certificate: x509.Certificate) -> SubjectNames:
        """The subjectAltName entries of a certificate (empty when it has none)."""
        try:
            san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return cls((), ())
        addresses = san.get_values_for_type(x509.IPAddress)
        return cls(
            tuple(san.get_values_for_type(x509.DNSName)),
            tuple(a for a in addresses if isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address)),
        )

    def __bool__(self) -> bool:
        return bool(self.dns or self.ips)

    def as_extension(self) -> x509.SubjectAlternativeName:
        """These names as a subjectAltName extension."""
        entries: list[x509.GeneralName] = [x509.DNSName(name) for name in self.dns]
        entries.extend(x509.IPAddress(address) for address in self.ips)
        return x509.SubjectAlternativeName(entries)

    def describe(self) -> list[str]:
        """Each name as text, DNS names first."""
        return [*self.dns, *(str(address) for address in self.ips)]

    def covers(self, host: str) -> bool:
        """Whether a client connecting to `host` would accept these names (RFC 6125 rules)."""
        host = host.strip("[]").lower().rstrip(".")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return any(_dns_matches(pattern.lower(), host) for pattern in self.dns)
        return address in self.ips


def _check_dns_name(host: str) -> str:
    if not host:
        raise ValueError("a host name cannot be empty")
    if not host.isascii():
        raise ValueError(f"{host!r}: give internationalised names in their xn-- (punycode) form")
    labels = host.split(".")
    for index, label in enumerate(labels):
        if label == "*" and index == 0 and len(labels) > 2:
            continue
        if not label or len(label) > 63 or label.startswith("-") or label.endswith("-"):
            raise ValueError(f"{host!r} is not a valid host name")
        if not all(ch.isalnum() or ch in "-_" for ch in label):
            raise ValueError(f"{host!r} is not a valid host name")
    return host


def _dns_matches(pattern: str, host: str) -> bool:
    # A wildcard stands for exactly one whole left-most label, as browsers and Go's crypto/x509 do.
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first and dot) and rest == pattern[2:]
    return pattern == host
