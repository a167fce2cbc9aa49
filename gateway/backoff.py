"""The one reconnect/restart backoff: exponential, capped, jittered.

Every retry loop of the gateway (the CAN link, the inverter CAN link, MQTT, Sparkplug, the web
server, the health history, the supervisor's output restarts) calls ``backoff_s``; each keeps its
own base, cap and jitter, which are arguments here. The ceiling of retry ``attempt`` is
``base_s * factor ** min(max_exponent, attempt)`` (the exponent bound keeps the power finite);
the jitter spreads many gateways that lost one broker or bus so that they do not retry in step
(AWS Architecture Blog, "Exponential Backoff And Jitter", 2015).

Pure apart from the random draw (``random.uniform``, one draw per call); it reads no clock.
"""

from __future__ import annotations

import enum
import random

__all__ = ["Jitter", "backoff_s"]


class Jitter(enum.Enum):
    """How the delay is drawn from the ceiling ``c`` of an attempt and the cap."""

    FULL = "full"
    """``uniform(0, min(cap, c))``: the cap bounds the range, so delays stay spread at the cap."""
    FULL_CLIPPED = "full_clipped"
    """``min(cap, uniform(0, c))``: the draw is clipped, so at the cap many delays equal it."""
    HALF = "half"
    """``uniform(m / 2, m)`` with ``m = min(cap, c)``: at least half the ceiling."""


def backoff_s(
    attempt: int,
    cap_s: float,
    *,
    base_s: float = 1.0,
    factor: float = 1.5,
    max_exponent: int | None = 10,
    jitter: Jitter = Jitter.FULL,
) -> float:
    """Delay in seconds before retry ``attempt`` (1-based; 0 allowed).

    Args:
        attempt: how many tries failed in a row.
        cap_s: upper bound of the delay, s.
        base_s: the ceiling at attempt 0, s.
        factor: growth of the ceiling per attempt.
        max_exponent: the exponent is ``min(max_exponent, attempt)``; ``None`` for no bound
            (then a very large ``attempt`` raises ``OverflowError``).
        jitter: how the delay is drawn (``Jitter``).

    Returns:
        A delay in ``[0, cap_s]`` (``[ceiling / 2, ceiling]`` for ``Jitter.HALF``).
    """
    exponent = attempt if max_exponent is None else min(max_exponent, attempt)
    ceiling_s = base_s * factor**exponent
    if jitter is Jitter.FULL:
        return random.uniform(0.0, min(cap_s, ceiling_s))
    if jitter is Jitter.FULL_CLIPPED:
        return min(cap_s, random.uniform(0.0, ceiling_s))
    top_s = min(cap_s, ceiling_s)
    return random.uniform(top_s / 2, top_s)
