"""The cyclic garbage collector held off while the router reads a large message.

A coordinate-heavy body decodes into thousands of position tuples (a 250 KB polygon: about
11,000), each a tracked allocation, so the collector ran about every 700 of them in the middle
of the decode, walking objects that are all still referenced, and promoted the survivors into
older generations, where they brought on collections of the hub's whole heap. The decoded
envelope holds no cycles and is dropped as soon as the verdict is made, which frees all of it
by reference counting: with the collector held off from the decode until then, it finds
nothing to do. Measured with callgrind (instructions, the same on a busy machine): see
bench/README.md, "The hub's own decode cost".

Validation is the contract's: the same verdicts, errors and field paths (geo.py, whose decoder
builds no positions for the common case; the collector is still held off for the rest).
"""

import gc
from types import TracebackType

#: Below this a body holds too few positions to set the collector off (it runs every 700
#: tracked allocations): the router does not hold it off for them.
SMALL_BODY_BYTES = 8 * 1024


class CollectorHeldOff:
    """``with CollectorHeldOff():`` no automatic collection inside.

    For large bodies only (``SMALL_BODY_BYTES``): the router decides that, so a small message
    pays nothing. Leaves a collector that someone else switched off as it is.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = False

    def __enter__(self) -> None:
        self._held = gc.isenabled()
        if self._held:
            gc.disable()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._held:
            gc.enable()
