"""The barge-in epoch of plugins that speak (LLM, Realtime, TTS) and their ``interrupt``.

Each such plugin holds an epoch. ``interrupt()`` moves it on by one (the
guide's form); ``interrupt(epoch)`` adopts the session's epoch when it is
newer and ignores an older or equal one, so a repeated broadcast is harmless
and the plugin's epoch is the session's, never a second count beside it.

A plugin may override ``interrupt`` to stop provider work, with or without an
``epoch`` parameter and with or without calling ``super().interrupt()``.
:func:`install_interrupt` wraps such an override so that the epoch still
moves exactly once, before the plugin's own code runs.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["EpochHolder", "in_interrupt", "install_interrupt"]

# The plugin whose wrapped interrupt() is running in this task (its epoch already moved).
_IN_INTERRUPT: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "va_actors_in_interrupt", default=None)


class EpochHolder(Protocol):
    """What a plugin base provides for :func:`install_interrupt`."""

    def _advance_epoch(self, epoch: int | None) -> bool:
        """Move the epoch (by one, or to ``epoch`` if newer); False if it did not move."""
        ...

    def _interrupt_failed(self, error: Exception) -> None:
        """Report that the plugin's ``interrupt`` override raised."""
        ...


def in_interrupt(plugin: object) -> bool:
    """True inside a wrapped ``interrupt`` of ``plugin`` (the epoch has already moved)."""
    return _IN_INTERRUPT.get() is plugin


def install_interrupt(cls: type) -> None:
    """Wrap ``cls``'s own ``interrupt`` override, if it has one (from ``__init_subclass__``)."""
    hook = cls.__dict__.get("interrupt")
    if hook is not None and not getattr(hook, "__va_epoch_wrapper__", False):
        setattr(cls, "interrupt", _wrap(hook))  # noqa: B010 - mypy: method assignment


def _wrap(hook: Callable[..., Any]) -> Callable[..., Awaitable[None]]:
    params = inspect.signature(hook).parameters
    takes_epoch = "epoch" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())

    @functools.wraps(hook)
    async def interrupt(self: EpochHolder, epoch: int | None = None) -> None:
        if _IN_INTERRUPT.get() is self:
            await _call(hook, self, epoch, takes_epoch)
            return
        if not self._advance_epoch(epoch):
            return
        token = _IN_INTERRUPT.set(self)
        try:
            await _call(hook, self, epoch, takes_epoch)
        except Exception as exc:
            self._interrupt_failed(exc)
        finally:
            _IN_INTERRUPT.reset(token)

    interrupt.__va_epoch_wrapper__ = True  # type: ignore[attr-defined]
    return interrupt


async def _call(hook: Callable[..., Any], plugin: object, epoch: int | None,
                takes_epoch: bool) -> None:
    result = hook(plugin, epoch=epoch) if takes_epoch else hook(plugin)
    if inspect.isawaitable(result):
        await result
