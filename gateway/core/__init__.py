"""The pure core: no I/O, no clock, no asyncio. Every function takes ``now_s`` or ``dt_s``."""
