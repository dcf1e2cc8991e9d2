"""One record per submission (issue 15): the visit form and the safety report form carry a key the
server renders when the form is shown; a repeat of the same post — a double tap, a resend after a
lost response, two posts at once — finds the record the first one made, without an error page.

The concurrent tests run on PostgreSQL (each thread has its own connection); the embedded run
skips them, CI's services run fails without PostgreSQL."""

import re
import threading
import time
import uuid

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

import visits.services
from schools.models import AuditEvent, Phase
from tests import factories
from tests.conftest import require_postgresql
from tests.test_safety import _form_data as safety_form_data
from tests.test_visits import form_data
from visits.models import SafetyReport, Suggestion, Visit

KEY_FIELD = re.compile(r'<input type="hidden" name="submission_key" value="([0-9a-f-]{36})"')


def _key_of(response) -> str:
    match = KEY_FIELD.search(response.content.decode())
    assert match, "the form has no submission key"
    return match.group(1)


@pytest.fixture
def phase(db):
    return factories.PhaseFactory(kind=Phase.Kind.FULL_ROUND)


def _visit_changes() -> int:
    return AuditEvent.objects.filter(object_type="visits.Visit", action=AuditEvent.Action.CHANGE).count()


def test_each_visit_form_shown_carries_its_own_key(world, login, phase):
    client = login(world.teacher)

    first = _key_of(client.get(reverse("visit_create")))
    second = _key_of(client.get(reverse("visit_create")))

    assert uuid.UUID(first) != uuid.UUID(second)


@pytest.mark.django_db
def test_the_same_visit_form_posted_twice_in_a_row_makes_one_visit(world, login, phase):
    client = login(world.teacher)
    data = form_data(world, submission_key=_key_of(client.get(reverse("visit_create"))))

    first = client.post(reverse("visit_create"), data)
    second = client.post(reverse("visit_create"), data, follow=True)

    visit = Visit.objects.get()
    assert first.status_code == 302 and first["Location"] == reverse("visit_detail", args=[visit.public_id])
    assert second.redirect_chain == [(reverse("visit_detail", args=[visit.public_id]), 302)]
    assert "这份家访记录已经保存过，没有重复保存。" in second.content.decode()
    assert str(visit.submission_key) == data["submission_key"]
    assert Suggestion.objects.count() == 1 and _visit_changes() == 1


def test_a_resend_of_a_draft_finds_the_draft(world, login, phase):
    client = login(world.teacher)
    data = form_data(world, action="draft", submission_key=str(uuid.uuid4()))

    client.post(reverse("visit_create"), data)
    second = client.post(reverse("visit_create"), data)

    visit = Visit.objects.get()
    assert visit.status == Visit.Status.DRAFT
    assert second["Location"] == reverse("visit_detail", args=[visit.public_id])


def test_forms_without_a_key_are_still_accepted_each_as_a_new_visit(world, login, phase):
    client = login(world.teacher)
    client.post(reverse("visit_create"), form_data(world))
    client.post(reverse("visit_create"), form_data(world))

    assert Visit.objects.filter(submission_key__isnull=True).count() == 2


def test_a_key_already_used_by_another_teacher_is_refused_without_revealing_the_record(world, login, phase):
    key = str(uuid.uuid4())
    login(world.teacher).post(reverse("visit_create"), form_data(world, submission_key=key))
    colleague = factories.UserFactory(school=world.school)
    factories.TeachingAssignmentFactory(teacher=colleague, school_class=world.school_class)

    response = login(colleague).post(reverse("visit_create"), form_data(world, submission_key=key))

    assert response.status_code == 200
    assert "这份家访记录表已经提交过" in response.content.decode()
    assert Visit.objects.count() == 1


def test_the_service_raises_visit_repeated_for_a_second_call_with_the_key(world, phase):
    from visits.forms import VisitForm

    form = VisitForm(form_data(world), user=world.teacher)
    assert form.is_valid(), form.errors
    arguments = {"visit": None, "acting_user": world.teacher, "submission_key": uuid.uuid4()}
    first = visits.services.visit_submit(data=form.visit_data([]), **arguments)

    with pytest.raises(visits.services.VisitRepeated) as repeated:
        visits.services.visit_submit(data=form.visit_data([]), **arguments)

    assert repeated.value.visit == first and Visit.objects.count() == 1


def _post_in_thread(user, url: str, data: dict, results: dict, name: str) -> threading.Thread:
    def post() -> None:
        try:
            client = Client()
            client.force_login(user)
            results[name] = client.post(url, data)
        finally:
            connection.close()  # this thread's own connection

    return threading.Thread(target=post, name=name)


@pytest.mark.django_db(transaction=True)
def test_the_same_visit_form_posted_twice_at_once_makes_one_visit(world, phase, monkeypatch):
    """The second post checks for the key while the first one's transaction is still open (it is
    held after writing the visit row), so it gets past the check, waits on the unique constraint,
    and is answered with the first one's record when that commits."""
    require_postgresql("the two posts need two connections and row-level locking")
    key = str(uuid.uuid4())
    data = form_data(world, submission_key=key)
    first_wrote_its_row = threading.Event()
    audit_event_record = visits.services.audit_event_record

    def hold_the_first_transaction_open(**kwargs):
        result = audit_event_record(**kwargs)
        if threading.current_thread().name == "first":
            first_wrote_its_row.set()
            time.sleep(1.0)  # the second post runs meanwhile and blocks on the key's index entry
        return result

    monkeypatch.setattr(visits.services, "audit_event_record", hold_the_first_transaction_open)
    results: dict = {}
    first = _post_in_thread(world.teacher, reverse("visit_create"), data, results, "first")
    second = _post_in_thread(world.teacher, reverse("visit_create"), data, results, "second")
    first.start()
    assert first_wrote_its_row.wait(10)
    second.start()
    first.join(20)
    second.join(20)

    visit = Visit.objects.get()
    detail = reverse("visit_detail", args=[visit.public_id])
    assert results["first"].status_code == results["second"].status_code == 302
    assert results["first"]["Location"] == results["second"]["Location"] == detail
    assert Suggestion.objects.count() == 1 and _visit_changes() == 1


@pytest.mark.django_db(transaction=True)
def test_many_concurrent_posts_of_one_form_make_one_visit(world, phase):
    require_postgresql("the posts need their own connections")
    data = form_data(world, submission_key=str(uuid.uuid4()))
    results: dict = {}
    threads = [_post_in_thread(world.teacher, reverse("visit_create"), data, results, f"post-{n}") for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    visit = Visit.objects.get()
    assert {response["Location"] for response in results.values()} == {reverse("visit_detail", args=[visit.public_id])}


# --- the safety report -------------------------------------------------------------------------


def test_the_safety_report_form_carries_a_key_and_a_resend_files_one_report(world, login):
    client = login(world.teacher)
    key = _key_of(client.get(reverse("safety_new")))

    first = client.post(reverse("safety_new"), safety_form_data(world, submission_key=key))
    # A resend with the same key is the same report, even if the page was edited in between.
    second = client.post(reverse("safety_new"), safety_form_data(world, submission_key=key, address="别的地址"))

    report = SafetyReport.objects.get()
    assert first.status_code == second.status_code == 302
    assert str(report.submission_key) == key and report.address == "城关镇幸福路 8 号 3 单元"


@pytest.mark.django_db(transaction=True)
def test_the_same_safety_report_posted_twice_at_once_files_one_report(world):
    require_postgresql("the two posts need their own connections")
    data = safety_form_data(world, submission_key=str(uuid.uuid4()))
    results: dict = {}
    threads = [_post_in_thread(world.teacher, reverse("safety_new"), data, results, f"post-{n}") for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert [response.status_code for response in results.values()] == [302, 302]
    assert SafetyReport.objects.count() == 1
