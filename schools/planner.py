"""Planner settings for a block of statements on PostgreSQL."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection


@contextmanager
def jit_off() -> Iterator[None]:
    """Run the block's statements without PostgreSQL's JIT compilation, for a bulk writer whose few
    large reads are estimated costly enough to be compiled: compiling cost a second of the demo
    ledgers' one read of the county's special students, which runs in 50 ms without. Only inside a
    transaction (``SET LOCAL``: an error that rolls it back restores the setting with it); nothing
    elsewhere or on other databases."""
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('jit'), set_config('jit', 'off', true)")
        before = cursor.fetchone()[0]
    yield
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('jit', %s, true)", [before])
