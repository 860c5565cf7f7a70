"""Driving a sans-I/O flow: answer each effect it yields until it returns.

The answering is the caller's (a transport sends, sleeps, fetches tokens); these loops are all that the
sync and async sides share about running the call flows (``flow.py``) and the wait flow (``waiting.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

E = TypeVar("E")
T = TypeVar("T")


def run_flow(flow: Generator[E, Any, T], answer: Callable[[E], Any]) -> T:
    reply: Any = None
    try:
        while True:
            try:
                effect = flow.send(reply)
            except StopIteration as done:
                return done.value
            reply = answer(effect)
    finally:
        flow.close()  # answering failed (cancelled, interrupted): the flow's own clean-up runs now


async def run_flow_async(flow: Generator[E, Any, T], answer: Callable[[E], Awaitable[Any]]) -> T:
    reply: Any = None
    try:
        while True:
            try:
                effect = flow.send(reply)
            except StopIteration as done:
                return done.value
            reply = await answer(effect)
    finally:
        flow.close()  # answering failed (cancelled, deadline): the flow's own clean-up runs now
