"""Single-use holders for one-time secrets (nonces, presignatures, per-round protocol state).

A one-time secret used twice reveals a key share: two FROST signature shares under one nonce
pair, or two ECDSA signatures from one presignature, are two linear equations in the share.
:class:`OneTime` is the one place where "check unused, then mark used" happens, and it does
both under a lock, so two threads (or two tasks of a thread pool) that race to use the same
secret can never both pass the check: the second one finds it used and raises
:class:`~tmpc.errors.StateError`.

Rules the holder enforces:

- :meth:`OneTime.take` hands the value out once and drops the holder's reference;
- copying, deep-copying and pickling raise :class:`~tmpc.errors.StateError` (a copy could be
  used a second time), and a dataclass that keeps its secret in a :class:`OneTime` field
  shares the holder with any ``dataclasses.replace`` copy, so the copy is used up together
  with the original;
- ``repr`` never shows the value.

What a holder cannot do: survive a process restart. A secret that is persisted (an ECDSA
presignature) is guarded by its store, which deletes it before use, and by
:class:`tmpc.state.ledger.Ledger`, which remembers every used one where a restored backup cannot
roll it back.
"""

from __future__ import annotations

import threading
from typing import Generic, NoReturn, TypeVar

from tmpc.errors import StateError

__all__ = ["OneTime"]

T = TypeVar("T")


class OneTime(Generic[T]):
    """A secret value that can be taken at most once, atomically across threads.

    Args:
        value: the secret (e.g. a tuple of scalars).
        what: a short public description used in error messages ("signing nonces of signer 3").
    """

    __slots__ = ("_lock", "_used", "_value", "_what")

    def __init__(self, value: T, what: str) -> None:
        self._lock = threading.Lock()
        self._value: T | None = value
        self._used = False
        self._what = what

    @property
    def used(self) -> bool:
        """True once :meth:`take` has handed the value out."""
        return self._used

    def _check_unused(self) -> None:
        # The check of take(), called with the lock held (tests pause here to show that a
        # second thread then waits for the lock instead of passing the check too).
        if self._used:
            raise StateError(f"{self._what} already used: a one-time secret is used at most once")

    def take(self) -> T:
        """Return the value and mark the holder used, as one atomic step.

        Raises:
            StateError: it was taken before (by this or any other thread).
        """
        with self._lock:
            self._check_unused()
            value = self._value
            self._value = None
            self._used = True
        assert value is not None
        return value

    def peek(self) -> T:
        """Read the value without using it up (raises :class:`StateError` once used).

        **Must not** be used to compute anything that leaves the process: that is what
        :meth:`take` is for.
        """
        with self._lock:
            if self._used or self._value is None:
                raise StateError(f"{self._what} already used: a one-time secret is used once")
            return self._value

    def __repr__(self) -> str:
        return f"<one-time {self._what}: {'used' if self._used else 'unused'}>"

    def _refuse(self) -> NoReturn:
        raise StateError(f"{self._what} is a one-time secret: it cannot be copied or pickled")

    def __copy__(self) -> NoReturn:
        self._refuse()

    def __deepcopy__(self, memo: object) -> NoReturn:
        self._refuse()

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        self._refuse()

    def __reduce__(self) -> NoReturn:
        self._refuse()

    def __getstate__(self) -> NoReturn:
        self._refuse()
