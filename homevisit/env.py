"""Strict readers for settings that come from the environment.

A malformed value stops start-up with a message naming the variable, instead of being guessed.
"""

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip()


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use 1/0, true/false, yes/no or on/off.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum of {minimum}.")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        raise ImproperlyConfigured(f"{name}={value!r} has an empty item; separate values with single commas.")
    return items


def env_database(name: str) -> dict | None:
    """Parse a database URL such as postgres://user@host:5432/db; None when unset."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    import dj_database_url

    value = value.strip()
    if not value.startswith(("postgres://", "postgresql://", "sqlite://")):
        raise ImproperlyConfigured(f"{name} must start with postgres://, postgresql:// or sqlite://; got {value!r}.")
    try:
        return dj_database_url.parse(value, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r} cannot be parsed: {exc}") from None


def env_broker_url(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not value.startswith(("redis://", "rediss://")):
        raise ImproperlyConfigured(f"{name} must be a Redis URL (redis://host:6379/0); got {value!r}.")
    return value
