"""The named users every scope test speaks of (STYLE.md): one school with a head teacher, a
teacher and an admin; its zone's admin; an inspector assigned to it; a bureau admin; and a
teacher and admin of another school in another zone, who must see nothing of the first."""

import os
from dataclasses import dataclass

import pytest
from django.test import Client

from schools.models import Role, School, SchoolClass, User
from students.models import Student
from tests import factories

REQUIRE_SERVICES = os.environ.get("HOMEVISIT_REQUIRE_SERVICES") == "1"

pytest_plugins = ["tests.browser"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so a fixture can tell that the test failed
    (the browser fixture then keeps the page's HTML and screenshot)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def require_postgresql(why: str) -> None:
    """Skip a test that needs PostgreSQL on the embedded run; in the services run (CI sets
    HOMEVISIT_REQUIRE_SERVICES=1) a missing PostgreSQL fails it instead of skipping silently."""
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    if REQUIRE_SERVICES:
        pytest.fail("HOMEVISIT_REQUIRE_SERVICES=1 but the database is not PostgreSQL")
    pytest.skip(f"{why}; the embedded run uses SQLite")


@pytest.fixture(autouse=True)
def _fast_and_private(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.PRIVATE_FILES_ROOT = tmp_path / "private"
    from django.core.cache import cache

    cache.clear()  # a page cached by one test (the dashboards' figures) is never served to the next


@pytest.fixture
def sqlite_bulk_limit(monkeypatch):
    """For tests that count a bulk writer's queries: Django 5.2 assumes SQLite's old limit of 999
    parameters a statement and splits each bulk insert into ~80-row statements, though the library
    allows far more; without this a count would grow with rows for a reason that is Django's."""
    import sqlite3

    from django.db import connection

    if connection.vendor == "sqlite":
        limit = sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        monkeypatch.setattr(connection.features, "max_query_params", limit)


@pytest.fixture(autouse=True)
def _eager_celery():
    """Tasks run in-process unless a test is about the Celery worker itself."""
    from homevisit.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _publish_circuit_closed():
    """Each test starts with the broker circuit closed and enabled (homevisit.celery: it is per
    process). A test that starts a Celery worker inside the test process fires ``worker_init``,
    which turns the circuit off for the worker; without the reset, later tests of the same pytest
    process would publish with no circuit (seen in CI's PostgreSQL run)."""
    from homevisit.celery import publish_circuit

    publish_circuit.close()
    publish_circuit.enabled = True
    yield
    publish_circuit.close()
    publish_circuit.enabled = True


@dataclass
class World:
    school: School
    other_school: School
    school_class: SchoolClass
    other_class: SchoolClass
    plain_class: SchoolClass  # a class of the school that the teacher does not teach
    student: Student
    other_student: Student
    plain_student: Student
    teacher: User
    head_teacher: User
    school_admin: User
    zone_admin: User
    inspector: User
    bureau_admin: User
    other_teacher: User
    other_admin: User

    def users(self) -> dict[str, User]:
        return {
            "teacher": self.teacher,
            "head_teacher": self.head_teacher,
            "school_admin": self.school_admin,
            "zone_admin": self.zone_admin,
            "inspector": self.inspector,
            "bureau_admin": self.bureau_admin,
            "other_teacher": self.other_teacher,
            "other_admin": self.other_admin,
        }


@pytest.fixture
def world(db) -> World:
    zone = factories.ZoneFactory(name="城关片区", code="Z01")
    other_zone = factories.ZoneFactory(name="东山片区", code="Z02")
    school = factories.SchoolFactory(zone=zone, name="城关第一小学", code="S0001")
    other_school = factories.SchoolFactory(zone=other_zone, name="东山中心小学", code="S0002")
    head_teacher = factories.UserFactory(username="head", real_name="李班主任", school=school)
    teacher = factories.UserFactory(username="teacher", real_name="张老师", school=school)
    school_class = factories.SchoolClassFactory(school=school, grade=3, number=2, head_teacher=head_teacher)
    plain_class = factories.SchoolClassFactory(school=school, grade=4, number=1)
    factories.TeachingAssignmentFactory(teacher=teacher, school_class=school_class)
    other_teacher = factories.UserFactory(username="other_teacher", real_name="赵老师", school=other_school)
    other_class = factories.SchoolClassFactory(school=other_school, grade=3, number=1, head_teacher=other_teacher)
    inspector = factories.UserFactory(username="inspector", real_name="刘督学", role=Role.INSPECTOR, school=None)
    factories.InspectorAssignmentFactory(inspector=inspector, school=school)
    return World(
        school=school,
        other_school=other_school,
        school_class=school_class,
        other_class=other_class,
        plain_class=plain_class,
        student=factories.StudentFactory(school_class=school_class, name="王小明"),
        other_student=factories.StudentFactory(school_class=other_class, name="陈小红"),
        plain_student=factories.StudentFactory(school_class=plain_class, name="周小强"),
        teacher=teacher,
        head_teacher=head_teacher,
        school_admin=factories.UserFactory(
            username="school_admin", real_name="孙校长", role=Role.SCHOOL_ADMIN, school=school
        ),
        zone_admin=factories.UserFactory(
            username="zone_admin", real_name="周主任", role=Role.ZONE_ADMIN, school=None, zone=zone
        ),
        inspector=inspector,
        bureau_admin=factories.UserFactory(
            username="bureau_admin",
            real_name="吴科长",
            role=Role.BUREAU_ADMIN,
            school=None,
            is_staff=True,
            is_superuser=True,
        ),
        other_teacher=other_teacher,
        other_admin=factories.UserFactory(
            username="other_admin", real_name="郑校长", role=Role.SCHOOL_ADMIN, school=other_school
        ),
    )


@pytest.fixture
def login():
    """login(user) -> a test Client signed in as that user."""

    def _login(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return _login
