"""What every benchmark here shares: Django set up on whatever DATABASE_URL points at (SQLite by
default), a throw-away test database for the run, so that a run never touches data."""

import os
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "homevisit.settings")


def in_test_database(run: Callable[[], None]) -> None:
    """Call ``run`` with Django set up and a fresh test database, destroyed afterwards."""
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    if connection.vendor != "sqlite":  # keep clear of the test suite's reusable database
        connection.settings_dict["TEST"]["NAME"] = f"bench_{connection.settings_dict['NAME']}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        run()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
