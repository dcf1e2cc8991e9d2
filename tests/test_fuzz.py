"""Fuzzing the forms and the pages that write (《大家访活动教师记录表》, the safety report, the roster
and staff imports) with hypothesis: whatever a browser, a broken phone or an attacker sends, the
answer is never a server error, a refusal says why in Chinese, and a refused request writes
nothing — not a visit, a suggestion, a revision, a report, a student, a guardian or an account.

Each test draws POST bodies (or files) from a strategy and sends them through the real views with
the test client. Every example runs in a savepoint that is rolled back, so that one example never
sees another's rows; the rows the example started from are compared with those it leaves.

Reproducibility: the examples are derandomised (``derandomize=True``: the same examples on every
run, derived from each test's source) and no example database is kept, so a CI failure is the
same failure on a laptop, and the run time stays put. ``HOMEVISIT_FUZZ=deep`` runs ten times the
examples with a fresh random seed each run, to look for new failures before a release.
"""

import contextlib
import datetime
import functools
import io
import os
import random
import re
import urllib.parse
import uuid
import warnings
import zipfile

import openpyxl
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client, TestCase
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import from_form
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from PIL import Image

from schools.importing import clean_code, parse_phone
from schools.models import ImportJob, Phase, SchoolClass, TeachingAssignment, User
from schools.staff_import import COLUMNS as STAFF_COLUMNS
from students.models import Guardian, Student, StudentCategory
from students.roster_import import COLUMNS as ROSTER_COLUMNS
from tests import factories
from visits.attachments import MAX_SIDE, attachment_prepare
from visits.forms import VisitForm
from visits.models import Attachment, Content, Method, Revision, SafetyReport, Suggestion, Visit
from visits.safety import safety_report_create
from visits.safety_forms import SafetyReportForm
from visits.services import visit_save_draft

DEEP = os.environ.get("HOMEVISIT_FUZZ") == "deep"


def fuzz(examples: int):
    """The settings of every fuzz test: ``examples`` derandomised examples (see the module's
    docstring), no deadline (a page render varies with the machine), and the health checks that a
    database-backed test trips on purpose turned off."""
    return settings(
        max_examples=examples * 10 if DEEP else examples,
        derandomize=not DEEP,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # the world is built once per test, examples roll back
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )


@contextlib.contextmanager
def rolled_back():
    """Run one example in a savepoint and undo whatever it wrote."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


@contextlib.contextmanager
def on_commit_run():
    """Run the on-commit callbacks (the import jobs' Celery tasks, eager) registered inside."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        yield


# --- what hostile input looks like -------------------------------------------------------------

FORMULAS = [
    '=HYPERLINK("http://evil.example","点我")',
    "=1+1",
    "+cmd|' /C calc'!A0",
    "@SUM(1)",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
    "=cmd|' /C notepad'!'A1'",
]
NASTY_TEXT = [
    "",
    " ",
    "\x00",
    "王\x00小明",
    "\x01\x02\x1f\x7f",
    "\u202e\u200f反向文字\u200e",
    "😀👨‍👩‍👧‍👦🇨🇳",
    "𠮷𡃁",  # outside the Basic Multilingual Plane
    "\ufeff",
    "\r\n\r\n",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%s%n%x",
    "{{ 7*7 }}{% debug %}",
    "../../etc/passwd",
    "ｆｕｌｌ－ｗｉｄｔｈ　１２３",
    "null",
    "None",
    "NaN",
    "-1",
    "1e308",
    "9" * 40,
    *FORMULAS,
]


def texts(max_size: int = 40) -> st.SearchStrategy[str]:
    """Random text without lone surrogates (which no browser can send), nasty classics, and texts
    just past each length limit and far past it (a megabyte)."""
    return st.one_of(
        st.sampled_from(NASTY_TEXT),
        st.text(st.characters(exclude_categories=("Cs",)), max_size=max_size),
        st.builds(
            lambda unit, times: unit * times,
            st.sampled_from(["很", "a", "😀", "\u202e", "\x00", "="]),
            st.sampled_from([30, 50, 199, 200, 201, 300, 500, 501, 2000, 2001, 4000, 4001, 100_000, 1_000_000]),
        ),
    )


LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%Y/%m/%d %H:%M"]
BROKEN_DATETIMES = [
    "2024-02-30T10:00",
    "2023-02-29T10:00",
    "2026-13-01T00:00",
    "2026-00-10T00:00",
    "2026-05-20T24:00",
    "2026-05-20T23:60",
    "0000-01-01T00:00",
    "0001-01-01T00:00",
    "1900-01-01T00:00",
    "1988-04-10T02:30",  # a minute that did not exist in Shanghai (summer time, 1986–1991)
    "1970-01-01T08:00",
    "2038-01-19T11:14",
    "9999-12-31T23:59",
    "10000-01-01T00:00",
    "-2026-05-20T10:00",
    "2026-05-20T10:00+99:00",
    "2026-05-20T10:00Z",
    "２０２６-０５-２０T１０:００",
    "昨天下午",
    "now",
    "",
]


def datetimes_text() -> st.SearchStrategy[str]:
    """Times as a datetime-local input sends them, near now and in the far past and future, and
    malformed ones."""

    def shown(moment: datetime.datetime, fmt: str) -> str:
        return f"{moment.year:04d}" + moment.strftime(fmt.replace("%Y", ""))

    near_now = st.builds(
        lambda minutes: timezone.localtime() + datetime.timedelta(minutes=minutes),
        st.integers(min_value=-60 * 24 * 400, max_value=60 * 24 * 10),
    )
    # Naive on purpose: a datetime-local input sends a local time without its zone.
    anywhen = st.datetimes(
        min_value=datetime.datetime(1, 1, 2),  # noqa: DTZ001
        max_value=datetime.datetime(9999, 12, 30),  # noqa: DTZ001
    )
    return st.one_of(
        st.builds(shown, near_now, st.sampled_from(LOCAL_FORMATS)),
        st.builds(shown, anywhen, st.sampled_from(LOCAL_FORMATS)),
        st.sampled_from(BROKEN_DATETIMES),
        texts(),
    )


def numbers_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.sampled_from(["0", "-0", "1.5", "1e3", " 60 ", "６０", "60分钟", "0x3c", "inf", "nan", "", "\x0060"]),
        texts(),
    )


def ids(*known: object) -> st.SearchStrategy[str]:
    """Primary keys or public ids: known ones (in scope and out of it), random UUIDs and numbers."""
    return st.one_of(
        st.sampled_from([str(value) for value in known]),
        st.uuids().map(str),
        st.integers(min_value=-(2**64), max_value=2**64).map(str),
        st.sampled_from(
            ["", "0", "1 OR 1=1", "[]", "{}", "None", "\x00", "1\x00", "00000000-0000-0000-0000-000000000000"]
        ),
        texts(),
    )


def sometimes(times: int, out_of: int) -> st.SearchStrategy[bool]:
    """True ``times`` in ``out_of`` draws, False the rest (and False when shrinking)."""
    return st.sampled_from([False] * (out_of - times) + [True] * times)


def flags() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(["on", "off", "", "true", "false", "0", "1", "yes", "是", "\x00"]), texts())


@st.composite
def mutated(draw, base: dict[str, object], values: dict[str, st.SearchStrategy], extra_keys: list[str]):
    """A POST body as (key, value) pairs: ``base`` (a valid body) with a few of its fields replaced
    by a value of their strategy (a list field by a list), sent twice or left out, then perhaps a
    few unexpected fields. Few changes at a time, so that many bodies get past the form to the
    rules of the service, and some are saved."""
    keys = list(base)
    changes = draw(
        st.dictionaries(st.sampled_from(keys), st.sampled_from(["replace", "replace", "drop", "twice"]), max_size=5)
    )
    pairs: list[tuple[str, str]] = []
    for key, value in base.items():
        action = changes.get(key, "keep")
        if action == "drop":
            continue
        if action == "replace":
            strategy = values.get(key, texts())
            value = draw(st.lists(strategy, max_size=4)) if isinstance(value, list) else draw(strategy)
        items = value if isinstance(value, list) else [value]
        pairs.extend((key, str(item)) for item in items)
        if action == "twice":
            pairs.extend((key, draw(values.get(key, texts()))) for _ in items or [None])
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        key = draw(st.one_of(st.sampled_from(extra_keys), st.text(max_size=12)))
        pairs.append((key, draw(texts())))
    return pairs


def send(client: Client, url: str, pairs: list[tuple[str, str]], encoding: str):
    """POST the pairs as a browser would: multipart (a form with a file input) or urlencoded."""
    if encoding == "urlencoded":
        body = urllib.parse.urlencode(pairs, encoding="utf-8")
        return client.post(url, body, content_type="application/x-www-form-urlencoded")
    data: dict[str, list[str]] = {}
    for key, value in pairs:
        data.setdefault(key, []).append(value)
    return client.post(url, data)


ENCODINGS = st.sampled_from(["multipart", "urlencoded"])
CJK = re.compile(r"[\u4e00-\u9fff]")


def assert_errors_in_chinese(*forms) -> None:
    """A refused form says why, and says it in Chinese."""
    messages = []
    for form in forms:
        if form is None:
            continue
        if hasattr(form, "non_form_errors"):  # a formset
            messages.extend(form.non_form_errors())
            for member in form.forms:
                messages.extend(message for errors in member.errors.values() for message in errors)
        else:
            messages.extend(message for errors in form.errors.values() for message in errors)
    assert messages, "the form was refused without a message"
    for message in messages:
        assert CJK.search(str(message)), f"not in Chinese: {message!r}"


# --- database snapshots ------------------------------------------------------------------------


def visit_state() -> tuple:
    """Every row a visit or safety form may write."""
    return (
        list(Visit.objects.order_by("pk").values()),
        list(Visit.students.through.objects.order_by("pk").values_list("visit_id", "student_id")),
        list(Visit.companions.through.objects.order_by("pk").values_list("visit_id", "user_id")),
        list(Suggestion.objects.order_by("pk").values()),
        list(Revision.objects.order_by("pk").values()),
        list(Attachment.objects.order_by("pk").values()),
        list(SafetyReport.objects.order_by("pk").values()),
        list(SafetyReport.students.through.objects.order_by("pk").values_list("safetyreport_id", "student_id")),
        list(SafetyReport.companions.through.objects.order_by("pk").values_list("safetyreport_id", "user_id")),
    )


def people_state() -> tuple:
    """Every row an import may write."""
    return (
        list(Student.objects.order_by("pk").values()),
        list(Guardian.objects.order_by("pk").values()),
        list(StudentCategory.objects.order_by("pk").values()),
        list(User.objects.order_by("pk").values()),
        list(TeachingAssignment.objects.order_by("pk").values()),
        list(SchoolClass.objects.order_by("pk").values()),
    )


# --- the visit record ------------------------------------------------------------------------


@pytest.fixture
def phase(world):
    return factories.PhaseFactory(kind=Phase.Kind.FULL_ROUND)


@pytest.fixture
def fuzz_world(world, phase):
    """The world, with a sibling in the teacher's class and a student who has left the school."""
    world.sibling = factories.StudentFactory(school_class=world.school_class, name="王小红")
    world.left_student = factories.StudentFactory(school_class=world.school_class, status=Student.Status.LEFT)
    return world


def visit_body(world) -> dict[str, object]:
    return {
        "visited_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "method": "in_home",
        "students": [str(world.student.pk), str(world.sibling.pk)],
        "companions": [str(world.head_teacher.pk)],
        "guardians_met": "母亲 王芳",
        "contents": ["learning", "safety"],
        "situation": "孩子在家按时完成作业。",
        "measures": "每周电话沟通一次。",
        "consent_recorded": "on",
        "integrity_declared": "on",
        "suggestions-TOTAL_FORMS": "2",
        "suggestions-INITIAL_FORMS": "0",
        "suggestions-MIN_NUM_FORMS": "0",
        "suggestions-MAX_NUM_FORMS": "10",
        "suggestions-0-text": "希望学校加强课后服务",
        "suggestions-0-reply": "",
        "suggestions-0-to_school": "on",
        "suggestions-1-text": "",
        "suggestions-1-reply": "",
        "action": "submit",
    }


def visit_values(world) -> dict[str, st.SearchStrategy]:
    student_ids = ids(
        world.student.pk,
        world.sibling.pk,
        world.plain_student.pk,
        world.other_student.pk,
        world.left_student.pk,
        world.student.public_id,
    )
    staff_ids = ids(
        world.head_teacher.pk,
        world.teacher.pk,
        world.school_admin.pk,
        world.other_teacher.pk,
        world.inspector.pk,
        world.bureau_admin.pk,
    )
    form_counts = st.one_of(
        st.integers(min_value=-3, max_value=14).map(str),
        st.sampled_from(["1000", "1001", "5000", "1000000000", "9" * 30, "-1000000000", "1.5", "", "二"]),
        texts(),
    )
    return {
        "visited_at": datetimes_text(),
        "method": st.one_of(st.sampled_from(Method.values), texts()),
        "students": student_ids,
        "companions": staff_ids,
        "guardians_met": texts(),
        "contents": st.one_of(st.sampled_from(Content.values), texts()),
        "situation": texts(),
        "measures": texts(),
        "consent_recorded": flags(),
        "integrity_declared": flags(),
        "version": numbers_text(),
        "suggestions-TOTAL_FORMS": form_counts,
        "suggestions-INITIAL_FORMS": form_counts,
        "suggestions-MIN_NUM_FORMS": form_counts,
        "suggestions-MAX_NUM_FORMS": form_counts,
        "suggestions-0-text": texts(),
        "suggestions-0-reply": texts(),
        "suggestions-0-to_school": flags(),
        "suggestions-1-text": texts(),
        "suggestions-1-reply": texts(),
        "action": st.one_of(st.sampled_from(["submit", "draft", ""]), texts()),
    }


VISIT_EXTRA_KEYS = [
    "suggestions-2-text",
    "suggestions-2-reply",
    "suggestions-9-text",
    "suggestions-10-text",
    "suggestions-999999999-text",
    "suggestions--1-text",
    "version",
    "photos",
    "school",
    "lead_teacher",
    "status",
    "public_id",
    "csrfmiddlewaretoken",
]


def assert_visit_answer(response, before: tuple, *, saved_url_prefix: str = "/visits/") -> None:
    """A saved record redirects to it, and what was stored obeys the record's rules; anything else is
    the form again (or a 400 for a body Django cannot parse) with nothing written."""
    event(f"answer {response.status_code}")
    if response.status_code == 400:  # a body Django refuses to parse (too large a field): the Chinese 400 page
        assert "提交的内容无法处理" in response.content.decode()
    assert response.status_code in (200, 302, 400), response.status_code
    if response.status_code == 302:
        assert response.url.startswith(saved_url_prefix), response.url
        visit = Visit.objects.get(public_id=response.url.strip("/").split("/")[-1])
        visit.full_clean(exclude=["school", "lead_teacher", "phase", "safety_report"])
        assert all(s.school_id == visit.school_id and s.status == Student.Status.ACTIVE for s in visit.students.all())
        assert all(u.school_id == visit.school_id and u.is_active for u in visit.companions.all())
        assert visit.lead_teacher_id not in {u.pk for u in visit.companions.all()}
        for suggestion in visit.suggestions.all():
            suggestion.full_clean()
            assert suggestion.text.strip() and (suggestion.reply.strip() or suggestion.to_school)
        if visit.is_submitted:
            assert visit.contents and visit.situation.strip() and visit.integrity_declared
        return
    assert visit_state() == before
    if response.status_code == 200:
        assert_errors_in_chinese(response.context["form"], response.context["formset"])


@fuzz(100)
@given(data=st.data())
def test_random_visit_forms_never_fail_and_never_write_half_a_record(fuzz_world, login, data):
    world = fuzz_world
    client = login(world.teacher)
    pairs = data.draw(mutated(visit_body(world), visit_values(world), VISIT_EXTRA_KEYS), label="body")
    encoding = data.draw(ENCODINGS, label="encoding")
    with rolled_back():
        before = visit_state()
        response = send(client, reverse("visit_create"), pairs, encoding)
        assert_visit_answer(response, before)


@pytest.fixture
def visits_to_edit(fuzz_world):
    """A draft of the teacher's and a submitted record with a suggestion (its edits make revisions)."""
    world = fuzz_world
    draft = Visit.objects.create(
        school=world.school, lead_teacher=world.teacher, visited_at=timezone.now(), method=Method.PHONE
    )
    draft.students.set([world.student])
    submitted = Visit.objects.create(
        school=world.school,
        lead_teacher=world.teacher,
        visited_at=timezone.now() - datetime.timedelta(days=1),
        method=Method.IN_HOME,
        contents=["learning"],
        situation="已走访。",
        integrity_declared=True,
        consent_recorded=True,
        status=Visit.Status.SUBMITTED,
        submitted_at=timezone.now(),
    )
    submitted.students.set([world.student])
    Suggestion.objects.create(visit=submitted, text="希望多沟通", reply="好的")
    return {"draft": draft, "submitted": submitted}


@fuzz(60)
@given(data=st.data())
def test_random_edits_of_a_record_never_fail_and_never_write_half_a_revision(fuzz_world, visits_to_edit, login, data):
    world = fuzz_world
    which = data.draw(st.sampled_from(["draft", "submitted"]), label="record")
    visit = visits_to_edit[which]
    editor = data.draw(st.sampled_from([world.teacher, world.school_admin]), label="editor")
    body = visit_body(world) | {"version": str(visit.version)}
    pairs = data.draw(mutated(body, visit_values(world), VISIT_EXTRA_KEYS), label="body")
    encoding = data.draw(ENCODINGS, label="encoding")
    with rolled_back():
        before = visit_state()
        response = send(login(editor), reverse("visit_edit", args=[visit.public_id]), pairs, encoding)
        assert_visit_answer(response, before)
        if response.status_code == 302 and which == "submitted":
            assert Revision.objects.filter(visit=visit).count() <= 1


@fuzz(80)
@given(data=st.data())
def test_visit_form_from_hypothesis_form_strategy_validates_without_error(fuzz_world, data):
    """``from_form`` draws typed values for each field (datetimes of any time zone, choices, ids);
    the form cleans them or says why, in Chinese, and the service stores a valid one or refuses."""

    world = fuzz_world
    form = data.draw(
        from_form(
            VisitForm,
            form_kwargs={"user": world.teacher},
            students=st.lists(
                st.sampled_from([world.student.pk, world.sibling.pk, world.other_student.pk, world.plain_student.pk]),
                max_size=3,
            ),
            companions=st.lists(
                st.sampled_from([world.head_teacher.pk, world.teacher.pk, world.other_teacher.pk]), max_size=2
            ),
            photos=st.just([]),
            situation=texts(),
            guardians_met=texts(),
            measures=texts(),
        ),
        label="form",
    )
    with rolled_back():
        before = visit_state()
        if not form.is_valid():
            assert_errors_in_chinese(form)
            assert visit_state() == before
            return
        try:
            visit = visit_save_draft(visit=None, data=form.visit_data([]), acting_user=world.teacher)
        except ValidationError as exc:
            assert all(CJK.search(message) for message in exc.messages), exc.messages
            assert visit_state() == before
        else:
            visit.full_clean(exclude=["school", "lead_teacher", "phase", "safety_report"])


@fuzz(60)
@given(data=st.data())
def test_random_query_strings_opening_the_forms_answer_a_page_or_404(fuzz_world, visits_to_edit, login, data):
    """The forms opened from a student or a safety report (?student=, ?report=) and the visit list's
    filters, with ids that are malformed, unknown or another school's."""
    world = fuzz_world
    report = safety_report_create(
        teacher=world.other_teacher,
        students=[world.other_student],
        companions=[],
        address="东山镇",
        planned_start=timezone.now(),
        expected_minutes=60,
        phone="13812345678",
    )
    known = ids(world.student.public_id, world.other_student.public_id, report.public_id, world.student.pk)
    path, names = data.draw(
        st.sampled_from(
            [
                (reverse("visit_create"), ["student", "report"]),
                (reverse("safety_new"), ["student"]),
                (reverse("visit_list"), ["school_class", "teacher", "method", "phase", "date_from", "date_to", "page"]),
                (reverse("home"), ["q", "status", "category"]),
            ]
        ),
        label="page",
    )
    query = data.draw(st.lists(st.tuples(st.sampled_from(names), st.one_of(known, datetimes_text())), max_size=4))
    user = data.draw(st.sampled_from([world.teacher, world.school_admin]), label="user")
    with rolled_back():
        before = visit_state()
        response = login(user).get(f"{path}?{urllib.parse.urlencode(query)}")
        event(f"answer {response.status_code}")
        assert response.status_code in (200, 302, 404), response.status_code
        if response.status_code == 302:  # a school admin's home is the school's page
            assert (path, user) == (reverse("home"), world.school_admin)
        assert visit_state() == before


# --- the safety report ---------------------------------------------------------------------------


def safety_body(world) -> dict[str, object]:
    return {
        "students": [str(world.student.public_id)],
        "address": "城关镇幸福路 8 号 3 单元",
        "planned_start": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "expected_minutes": "90",
        "phone": "138 1234 5678",
        "companions": [str(world.head_teacher.pk)],
    }


def safety_values(world) -> dict[str, st.SearchStrategy]:
    return {
        "students": ids(
            world.student.public_id,
            world.sibling.public_id,
            world.plain_student.public_id,
            world.other_student.public_id,
            world.left_student.public_id,
            world.student.pk,
        ),
        "address": texts(),
        "planned_start": datetimes_text(),
        "expected_minutes": numbers_text(),
        "phone": st.one_of(
            st.sampled_from(["13812345678", "+86 138 1234 5678", "0371-12345678", "12345", "１３８１２３４５６７８"]),
            texts(),
        ),
        "companions": ids(world.head_teacher.pk, world.teacher.pk, world.other_teacher.pk, world.inspector.pk),
    }


@fuzz(100)
@given(data=st.data())
def test_random_safety_reports_never_fail_and_never_write_half_a_report(fuzz_world, login, data):
    world = fuzz_world
    client = login(world.teacher)
    pairs = data.draw(mutated(safety_body(world), safety_values(world), ["status", "due_at", "teacher"]), label="body")
    encoding = data.draw(ENCODINGS, label="encoding")
    with rolled_back():
        before = visit_state()
        response = send(client, reverse("safety_new"), pairs, encoding)
        event(f"answer {response.status_code}")
        assert response.status_code in (200, 302, 400), response.status_code
        if response.status_code == 302:
            assert response.url == reverse("safety_mine")
            report = SafetyReport.objects.filter(teacher=world.teacher).order_by("-pk").first()
            report.full_clean()
            assert all(s.school_id == world.school.pk for s in report.students.all())
            assert all(u.school_id == world.school.pk and u.pk != world.teacher.pk for u in report.companions.all())
            assert "\x00" not in report.address
            return
        assert visit_state() == before
        if response.status_code == 200:
            assert_errors_in_chinese(response.context["form"])


@fuzz(80)
@given(data=st.data())
def test_safety_report_form_from_hypothesis_form_strategy_validates_without_error(fuzz_world, data):
    world = fuzz_world
    form = data.draw(
        from_form(
            SafetyReportForm,
            form_kwargs={"user": world.teacher},
            students=st.lists(
                st.sampled_from(
                    [str(world.student.public_id), str(world.other_student.public_id), str(uuid.uuid4()), "1"]
                ),
                max_size=3,
            ),
            companions=st.lists(
                st.sampled_from([world.head_teacher.pk, world.teacher.pk, world.other_teacher.pk]), max_size=2
            ),
            address=texts(),
            phone=st.one_of(st.sampled_from(["13812345678", "0371-12345678"]), texts()),
        ),
        label="form",
    )
    with rolled_back():
        before = visit_state()
        if not form.is_valid():
            assert_errors_in_chinese(form)
            assert visit_state() == before
            return
        try:
            report = safety_report_create(teacher=world.teacher, **form.cleaned_data)
        except ValidationError as exc:
            assert all(CJK.search(message) for message in exc.messages), exc.messages
            assert visit_state() == before
        else:
            report.full_clean()


@fuzz(40)
@given(reason=st.one_of(texts(), st.lists(texts(), max_size=3)), encoding=ENCODINGS)
def test_random_reasons_for_closing_a_report_never_fail(fuzz_world, login, reason, encoding):
    world = fuzz_world
    pairs = [("reason", item) for item in (reason if isinstance(reason, list) else [reason])]
    with rolled_back():
        report = safety_report_create(
            teacher=world.teacher,
            students=[world.student],
            companions=[],
            address="城关镇幸福路 8 号",
            planned_start=timezone.now(),
            expected_minutes=60,
            phone="13812345678",
        )
        before = visit_state()
        response = send(login(world.school_admin), reverse("safety_close", args=[report.public_id]), pairs, encoding)
        assert response.status_code in (302, 400), response.status_code
        if response.status_code == 302:
            report.refresh_from_db()
            assert report.status == SafetyReport.Status.CLOSED
            report.full_clean()
            return
        assert visit_state() == before
        page = response.content.decode()
        assert "关闭原因" in page or "提交的内容无法处理" in page  # the form again, or a body too large to read


# --- the roster and staff imports ------------------------------------------------------------

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ERROR_VALUES = ["#N/A", "#REF!", "#VALUE!", "#DIV/0!", "#NAME?", "#NULL!", "#NUM!"]


def headers_of(columns) -> list[str]:
    return [label for column in columns for label in (column.label, *column.aliases)]


def cell_values() -> st.SearchStrategy[object]:
    """What a cell may hold: nothing, numbers (of more digits than Excel keeps, and not numbers at
    all), booleans, dates and times of any century, formulas, Excel's error values, and text — long,
    control characters and all."""
    return st.one_of(
        st.none(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.datetimes(
            min_value=datetime.datetime(1000, 1, 1),  # noqa: DTZ001 - a cell holds no time zone
            max_value=datetime.datetime(9999, 12, 31),  # noqa: DTZ001
        ),
        st.dates(min_value=datetime.date(1000, 1, 1)),
        st.times(),
        st.timedeltas(min_value=datetime.timedelta(days=-1000), max_value=datetime.timedelta(days=1000)),
        st.sampled_from(FORMULAS + ["=1/0", "=NA()", '=REPT("很",40000)', "=A1"]),
        st.sampled_from(ERROR_VALUES),
        texts(),
        st.builds(lambda times: "很" * times, st.sampled_from([50, 51, 200, 201, 32767, 40000])),
    )


def cell(value: object) -> object:
    """A value as a cell can hold it: the characters XLSX cannot store are dropped (openpyxl refuses
    them), as an office suite does when it saves."""
    return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value


@st.composite
def workbooks(draw, columns, valid_row, max_rows: int = 6) -> tuple[bytes, dict[int, list]]:
    """An XLSX file built with openpyxl: maybe a title above the header, a header of the real
    Chinese labels and aliases (shuffled, some missing, some doubled) and random text, rows made
    from valid ones with some cells replaced by random values, maybe a second sheet. Returns the
    bytes and the rows by Excel row number, keyed by header label."""
    labels = headers_of(columns)
    if draw(sometimes(1, 8)):
        header = draw(st.lists(st.one_of(st.sampled_from(labels), texts(max_size=8)), max_size=14))
    else:  # mostly the template's header, perhaps a column left out, some noise after
        left_out = draw(st.sets(st.sampled_from([column.label for column in columns]), max_size=1))
        header = [column.label for column in columns if column.label not in left_out]
        header += draw(st.lists(st.one_of(st.sampled_from(labels), texts(max_size=8)), max_size=2))
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = draw(st.sampled_from(["学生名册", "Sheet1", "教职工", "名单（2026）", "=1+1"]))
    title_rows = draw(st.integers(min_value=0, max_value=3))
    for _ in range(title_rows):
        sheet.append([cell(draw(texts(max_size=10)))])
    sheet.append([cell(label) for label in header])
    rows: dict[int, list] = {}
    for index in range(0 if draw(sometimes(1, 10)) else draw(st.integers(min_value=1, max_value=max_rows))):
        values = valid_row(index)
        row = [values.get(label, draw(cell_values()) if draw(sometimes(1, 5)) else None) for label in header]
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
            if row:
                row[draw(st.integers(min_value=0, max_value=len(row) - 1))] = draw(cell_values())
        row = [cell(value) for value in row]
        if draw(sometimes(1, 10)):
            sheet.append([])  # a blank row between rows
        sheet.append(row)
        rows[sheet.max_row] = row
    if draw(sometimes(1, 5)):
        other = workbook.create_sheet("说明")
        other.append([cell(draw(texts(max_size=20)))])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue(), {number: dict(zip(header, row, strict=False)) for number, row in rows.items()}


ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(born: datetime.date, sequence: str) -> str:
    body = f"410522{born:%Y%m%d}{sequence}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True)) % 11]


def roster_row(index: int) -> dict[str, object]:
    born = datetime.date(2016, 9, 1) + datetime.timedelta(days=index)
    number = id_number(born, f"{index * 2 + 1:03d}")
    return {
        "姓名": f"测试同学{index}",
        "性别": "男",
        "学籍号": f"G{number}",
        "全国学籍号": f"G{number}",
        "身份证件号": number,
        "出生日期": born.isoformat(),
        "年级": "三年级",
        "班级": "2班",
        "家庭住址": f"城关镇幸福路 {index} 号",
        "监护人姓名": f"测试家长{index}",
        "监护人关系": "父亲",
        "监护人联系电话": f"139{index:08d}",
        "是否留守儿童": "否",
        "残疾类型": "无",
    }


def staff_row(index: int) -> dict[str, object]:
    return {
        "姓名": f"测试老师{index}",
        "手机号": f"1370000{index:04d}",
        "身份": ["任课教师", "班主任", "学校管理员"][index % 3],
        "班主任班级": "四年级(1)班" if index % 3 == 1 and index < 3 else "",
        "任教班级": "三年级(2)班、四年级(1)班",
        "任教学科": "数学",
    }


IMPORTS = {
    "roster": ("roster_import", ROSTER_COLUMNS, roster_row, "学籍号"),
    "staff": ("staff_import", STAFF_COLUMNS, staff_row, "手机号"),
}


def import_file(client: Client, prefix: str, content: bytes, name: str = "名单.xlsx"):
    with on_commit_run():  # the validation task, eager
        return client.post(reverse(f"{prefix}_upload"), {"file": SimpleUploadedFile(name, content, XLSX)})


def assert_upload_answer(client: Client, prefix: str, response, before: tuple) -> ImportJob | None:
    """The upload is refused on its page with a Chinese reason, or it became a job whose page shows
    the problems (or why the file cannot be read); either way nothing was stored yet."""
    assert response.status_code in (200, 302), response.status_code
    assert people_state() == before
    if response.status_code == 200:
        assert_errors_in_chinese(response.context["form"])
        assert not ImportJob.objects.exists()
        return None
    job = ImportJob.objects.get()
    page = client.get(response.url)
    assert page.status_code == 200
    assert job.status in (ImportJob.Status.FAILED, ImportJob.Status.VALIDATED), job.status
    event(f"job {job.status}")
    if job.status == ImportJob.Status.FAILED:
        assert CJK.search(job.error), job.error
        assert job.error in page.content.decode()
        assert not job.file_path.exists()
    for problem in job.problems:
        assert CJK.search(problem["message"]) and CJK.search(problem["column"]), problem
    return job


@pytest.mark.parametrize("kind", IMPORTS)
@fuzz(40)
@given(data=st.data())
def test_random_workbooks_are_checked_with_chinese_reasons_and_only_valid_rows_are_imported(
    fuzz_world, login, kind, data
):
    world = fuzz_world
    prefix, columns, valid_row, key_label = IMPORTS[kind]
    content, rows = data.draw(workbooks(columns, valid_row), label="workbook")
    client = login(world.school_admin)
    with rolled_back():
        before = people_state()
        job = assert_upload_answer(client, prefix, import_file(client, prefix, content), before)
        if job is None or job.status != ImportJob.Status.VALIDATED or not job.valid_rows:
            return
        # Nothing was stored by the upload and the check (asserted above); now the clerk confirms.
        with on_commit_run():  # the apply task, eager
            response = client.post(reverse(f"{prefix}_confirm", args=[job.public_id]), {"skip_invalid": "1"})
        assert response.status_code == 302
        job.refresh_from_db()
        event(f"applied {job.status}")
        assert job.status == ImportJob.Status.DONE, job.error
        assert client.get(reverse(f"{prefix}_job", args=[job.public_id])).status_code == 200
        refused = {problem["row"] for problem in job.problems}
        valid_keys = set()
        for number, values in rows.items():
            if number in refused:
                continue
            for label in [key_label, "全国学籍号"] if kind == "roster" else [key_label]:
                with contextlib.suppress(ValueError):
                    raw = values.get(label)
                    valid_keys.add(clean_code(raw) if kind == "roster" else parse_phone(raw))
        if kind == "roster":
            created = Student.objects.exclude(pk__in=[row["id"] for row in before[0]])
            assert {s.student_number for s in created} <= valid_keys
            assert created.count() == job.result["created"]
            for student in created:
                student.full_clean(validate_unique=False)
        else:
            created = User.objects.exclude(pk__in=[row["id"] for row in before[3]])
            assert {u.username for u in created} <= valid_keys
            assert created.count() == job.result["created"]
            for user in created:
                user.full_clean(exclude=["password"], validate_unique=False)


@functools.cache
def valid_xlsx(kind: str) -> bytes:
    """A valid file of three rows; the same bytes on every call (a strategy draws offsets into it)."""
    _prefix, columns, valid_row, _key = IMPORTS[kind]
    workbook = openpyxl.Workbook()
    workbook.properties.created = workbook.properties.modified = datetime.datetime(2026, 5, 20)  # noqa: DTZ001
    sheet = workbook.active
    header = [column.label for column in columns]
    sheet.append(header)
    for index in range(3):
        sheet.append([valid_row(index).get(label) for label in header])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def rezipped(content: bytes, change) -> bytes:
    """The archive with each member passed through ``change(name, data)`` (None drops it)."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        members = [(info.filename, archive.read(info.filename)) for info in archive.infolist()]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            changed = change(name, data)
            if changed is not None:
                archive.writestr(name, changed)
    return out.getvalue()


@st.composite
def broken_files(draw, valid: bytes) -> bytes:
    """Bytes that are not a workbook, or a workbook broken on the way: random bytes behind an XLSX's
    or an old .xls's magic number, a real file cut short or with bytes flipped, and archives with a
    part missing, emptied, garbled, or a sheet whose XML is cut or names shared strings that are
    not there."""
    members = ["[Content_Types].xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml", "xl/_rels/workbook.xml.rels"]
    garbage = st.binary(max_size=300)
    kind = draw(st.sampled_from(["random", "magic", "xls", "cut", "flipped", "member"]))
    if kind == "random":
        return draw(st.binary(max_size=3000))
    if kind == "magic":
        return b"PK\x03\x04" + draw(garbage)
    if kind == "xls":
        return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + draw(garbage)
    if kind == "cut":
        return valid[: draw(st.integers(min_value=0, max_value=len(valid) - 1))]
    if kind == "flipped":
        data = bytearray(valid)
        for _ in range(draw(st.integers(min_value=1, max_value=10))):
            data[draw(st.integers(min_value=0, max_value=len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    target = draw(st.sampled_from(members))
    how = draw(st.sampled_from(["drop", "empty", "garbage", "cut", "bad index", "not xml"]))
    replacement = {
        "drop": None,
        "empty": b"",
        "garbage": draw(garbage),
        "not xml": b"\xef\xbb\xbf<?xml version='1.0'?><<<>>>&&&\x00",
        "bad index": b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        b'<row r="1"><c r="A1" t="s"><v>99999</v></c><c r="B1" t="n"><v>abc</v></c></row></sheetData></worksheet>',
    }

    def change(name: str, data: bytes):
        if name != target:
            return data
        if how == "cut":
            return data[: len(data) // 2]
        return replacement[how]

    return rezipped(valid, change)


@pytest.mark.parametrize("kind", IMPORTS)
@pytest.mark.filterwarnings("ignore:.*contains invalid dependency definitions:UserWarning")
@fuzz(30)
@given(data=st.data())
def test_random_bytes_and_broken_workbooks_are_refused_in_chinese_and_store_nothing(fuzz_world, login, kind, data):
    world = fuzz_world
    prefix = IMPORTS[kind][0]
    content = data.draw(broken_files(valid_xlsx(kind)), label="file")
    name = data.draw(
        st.sampled_from(["名单.xlsx", "名单.xls", "名单", "../../名单.xlsx", "名单.xlsx\x00.exe"]), label="name"
    )
    client = login(world.school_admin)
    with rolled_back():
        before = people_state()
        job = assert_upload_answer(client, prefix, import_file(client, prefix, content, name), before)
        if job is not None and job.status == ImportJob.Status.VALIDATED:
            assert job.file_path.exists()  # kept for the confirmation, nothing imported yet


# --- attachments -------------------------------------------------------------------------------


def photo_samples() -> list[bytes]:
    samples = []
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x0112] = 6  # rotated
    exif[0x8825] = {1: "N", 2: (30.0, 15.0, 0.0), 3: "E", 4: (120.0, 10.0, 0.0)}
    for kind, mode in (("JPEG", "RGB"), ("PNG", "RGBA"), ("PNG", "P")):
        out = io.BytesIO()
        noise = random.Random(48).randbytes(48 * 32 * 3)  # the same bytes in every process (seed)
        Image.frombytes("RGB", (48, 32), noise).convert(mode).save(out, format=kind, exif=exif)
        samples.append(out.getvalue())
    out = io.BytesIO()
    Image.new("RGB", (40, 60), "white").save(out, format="PDF")
    samples.append(out.getvalue())
    return samples


PHOTO_SAMPLES = photo_samples()


@st.composite
def damaged_photos(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(PHOTO_SAMPLES)))
    for _ in range(draw(st.integers(min_value=0, max_value=12))):
        data[draw(st.integers(min_value=0, max_value=len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(min_value=0, max_value=len(data)))]
    if draw(sometimes(1, 6)):
        data += draw(st.binary(max_size=200))
    return bytes(data)


@fuzz(500)
@given(content=damaged_photos(), name=texts(max_size=30))
def test_damaged_photos_are_re_encoded_without_their_metadata_or_refused_in_chinese(content, name):
    # A name as Django's upload parser passes it on: without a directory, never "", "." or "..".
    name = name.replace("/", "_").replace("\\", "_")
    upload = SimpleUploadedFile(name if name.strip(".") else "photo.jpg", content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns of the damage it reads past
        try:
            prepared = attachment_prepare(upload)
        except ValidationError as exc:
            assert all(CJK.search(message) for message in exc.messages), exc.messages
            event("refused")
            return
    event(f"stored {prepared.content_type}")
    assert len(prepared.name) <= 200
    if prepared.content_type == "application/pdf":
        assert prepared.payload == content
        return
    image = Image.open(io.BytesIO(prepared.payload))
    image.load()
    assert image.format in ("JPEG", "PNG") and max(image.size) <= MAX_SIDE
    assert not image.getexif().get(0x8825) and not image.getexif().get(0x010F)
