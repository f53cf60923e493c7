"""Types of the compiled GeoJSON coordinates check (services/hub/_geo.c)."""

import msgspec

LONGITUDE_BOUND: int
LATITUDE_BOUND: int
RING_MIN: int
RING_MAX: int
RINGS_MIN: int
RINGS_MAX: int

def point(data: bytes | memoryview | msgspec.Raw, /) -> bool: ...
def polygon(data: bytes | memoryview | msgspec.Raw, /) -> bool: ...
def blank(data: bytes | memoryview, /) -> tuple[bytes | memoryview, int] | None: ...
