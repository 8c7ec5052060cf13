"""What both services' rate limits share: a token bucket, and who a peer is.

The executor's run admission and the memory service's refused-calls budget
both count per caller and per peer; one bucket and one peer parser serve both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    """`capacity` tokens at most, refilled at `capacity` per `period` seconds."""

    capacity: float
    period: float
    tokens: float
    stamp: float

    @classmethod
    def full(cls, capacity: float, now: float, period: float = 60.0) -> TokenBucket:
        return cls(capacity, period, capacity, now)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.capacity / self.period)
        self.stamp = now

    def wait(self, now: float) -> float:
        """Seconds until a token is there; 0 when one is."""
        self._refill(now)
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) * self.period / self.capacity

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1.0

    def is_full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity


def peer_address(peer: str) -> str:
    """`ipv4:10.0.0.5:51234` -> `10.0.0.5`, `ipv6:[::1]:51234` -> `::1`; others as they are."""
    scheme, _, address = peer.partition(":")
    if scheme == "ipv6" and address.startswith("["):
        return address[1:].partition("]")[0]
    if scheme == "ipv4":
        return address.rpartition(":")[0] or address
    return peer
