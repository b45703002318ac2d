"""The base of mutable records on the scan path (why not dataclasses: see mlsec/findings.py).

A record subclass declares ``__slots__`` and a plain ``__init__``; this base gives it a repr
of every slot, so debugging output and test failures stay readable.
"""

from __future__ import annotations

from reprlib import recursive_repr


class Slotted:
    __slots__: tuple[str, ...] = ()

    @recursive_repr()  # records may refer to each other (a pickle Global lists its Calls)
    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"
