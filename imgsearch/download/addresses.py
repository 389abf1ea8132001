"""Which addresses a download may connect to: global unicast ones, and those that
`IMGSEARCH_ALLOWED_HOSTS` names (a host, an address or a network)."""

from __future__ import annotations

import ipaddress


def host_allowed_by_name(host: str, allowed: list[str]) -> bool:
    return host.lower().strip("[]") in allowed


# IPv6 prefixes that carry an IPv4 address (NAT64, IPv4-compatible, IPv4-translated, 6to4,
# Teredo): on a network that routes them they can reach the IPv4 address inside, so they are
# refused like the private networks unless allow-listed.
_IPV4_IN_IPV6 = [
    ipaddress.ip_network(n)
    for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96", "::ffff:0:0:0/96", "2002::/16", "2001::/32")
]


def address_allowed(address: str, allowed: list[str]) -> bool:
    """True for a global unicast address, or one inside an allow-listed address/network."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for entry in allowed:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name, checked by host_allowed_by_name
    if isinstance(ip, ipaddress.IPv6Address) and any(ip in net for net in _IPV4_IN_IPV6):
        return False
    return ip.is_global and not ip.is_multicast
