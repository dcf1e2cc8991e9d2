"""Who reaches what: for every URL of the foundation, each named user gets 200 or 404, and every
404 given by the scope gate writes a denied-access audit row."""

import pytest
from django.urls import reverse

from schools.models import AuditEvent, ImportJob

EVERYONE_OF_THE_SCHOOL = {"teacher", "head_teacher", "school_admin", "zone_admin", "inspector", "bureau_admin"}
WORKS_WITH_THE_CLASS = EVERYONE_OF_THE_SCHOOL
NOT_THE_TEACHERS = EVERYONE_OF_THE_SCHOOL - {"teacher", "head_teacher"}
SCHOOL_ADMINS = {"school_admin", "other_admin"}
THE_SCHOOL_ADMIN = {"school_admin"}
ALL_USERS = {"teacher", "head_teacher", "school_admin", "zone_admin", "inspector", "bureau_admin"} | {
    "other_teacher",
    "other_admin",
}


def _job(world) -> ImportJob:
    return ImportJob.objects.create(
        kind=ImportJob.Kind.ROSTER,
        school=world.school,
        uploaded_by=world.school_admin,
        file_name="名册.xlsx",
        sha256="0" * 64,
        status=ImportJob.Status.VALIDATED,
    )


def _staff_job(world) -> ImportJob:
    job = _job(world)
    job.kind = ImportJob.Kind.STAFF
    job.save()
    return job


# (description, url builder, the users who get 200; every other user gets 404)
MATRIX = [
    ("school page", lambda w: reverse("school_detail", args=[w.school.pk]), EVERYONE_OF_THE_SCHOOL),
    ("staff list", lambda w: reverse("school_staff", args=[w.school.pk]), EVERYONE_OF_THE_SCHOOL),
    ("own class", lambda w: reverse("class_detail", args=[w.school_class.pk]), WORKS_WITH_THE_CLASS),
    ("class the teacher does not teach", lambda w: reverse("class_detail", args=[w.plain_class.pk]), NOT_THE_TEACHERS),
    ("student", lambda w: reverse("student_detail", args=[w.student.public_id]), WORKS_WITH_THE_CLASS),
    (
        "student of a class the teacher does not teach",
        lambda w: reverse("student_detail", args=[w.plain_student.public_id]),
        NOT_THE_TEACHERS,
    ),
    ("roster upload", lambda w: reverse("roster_import_upload"), SCHOOL_ADMINS),
    ("roster template", lambda w: reverse("roster_import_template"), SCHOOL_ADMINS),
    ("staff upload", lambda w: reverse("staff_import_upload"), SCHOOL_ADMINS),
    ("staff template", lambda w: reverse("staff_import_template"), SCHOOL_ADMINS),
    ("class management", lambda w: reverse("class_create"), SCHOOL_ADMINS),
    ("roster import job", lambda w: reverse("roster_import_job", args=[_job(w).public_id]), THE_SCHOOL_ADMIN),
    (
        "roster import problems",
        lambda w: reverse("roster_import_problems", args=[_job(w).public_id]),
        THE_SCHOOL_ADMIN,
    ),
    ("staff import job", lambda w: reverse("staff_import_job", args=[_staff_job(w).public_id]), THE_SCHOOL_ADMIN),
    (
        "roster job seen through the staff URL",
        lambda w: reverse("staff_import_job", args=[_job(w).public_id]),
        set(),
    ),
]


@pytest.mark.parametrize("user_key", sorted(ALL_USERS))
@pytest.mark.parametrize(("description", "url_for", "allowed"), MATRIX, ids=[row[0] for row in MATRIX])
def test_each_role_gets_the_page_or_404(world, login, user_key, description, url_for, allowed):
    url = url_for(world)
    denied_before = AuditEvent.objects.filter(action=AuditEvent.Action.DENIED).count()
    response = login(world.users()[user_key]).get(url)
    expected = 200 if user_key in allowed else 404
    assert response.status_code == expected, f"{user_key} on {description}"
    denied_after = AuditEvent.objects.filter(action=AuditEvent.Action.DENIED).count()
    assert denied_after == denied_before + (expected == 404)


@pytest.mark.parametrize(
    "name", ["roster_import_confirm", "roster_import_cancel", "staff_import_confirm", "staff_import_cancel"]
)
def test_another_schools_admin_cannot_confirm_or_cancel_an_import(world, login, name):
    job = _job(world)
    if name.startswith("staff"):
        job.kind = ImportJob.Kind.STAFF
        job.save()
    response = login(world.other_admin).post(reverse(name, args=[job.public_id]))
    assert response.status_code == 404
    job.refresh_from_db()
    assert job.status == ImportJob.Status.VALIDATED


def test_a_denied_attempt_is_logged_with_user_object_and_address(world, login):
    login(world.other_teacher).get(reverse("student_detail", args=[world.student.public_id]))
    event = AuditEvent.objects.get(action=AuditEvent.Action.DENIED)
    assert event.user == world.other_teacher
    assert event.object_type == "students.Student"
    assert str(world.student.public_id) in event.object_id
    assert event.ip == "127.0.0.1"


def test_anonymous_visitors_are_sent_to_login(world, client):
    for url in ["/", reverse("student_detail", args=[world.student.public_id]), reverse("roster_import_upload")]:
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize("user_key", sorted(ALL_USERS))
def test_the_student_list_shows_only_students_in_scope(world, login, user_key):
    response = login(world.users()[user_key]).get(reverse("student_list"))
    names = {student.name for student in response.context["page"]}
    expected = {
        "teacher": {"王小明"},
        "head_teacher": {"王小明"},
        "school_admin": {"王小明", "周小强"},
        "zone_admin": {"王小明", "周小强"},
        "inspector": {"王小明", "周小强", "陈小红"},
        "bureau_admin": {"王小明", "周小强", "陈小红"},
        "other_teacher": {"陈小红"},
        "other_admin": {"陈小红"},
    }[user_key]
    assert names == expected


# --- one gate per kind (issue 14) ----------------------------------------------------------------


def test_zones_are_visible_to_the_bureau_roles_and_their_own_zone_admin_only(world):
    from schools.models import Zone

    both = set(Zone.objects.values_list("pk", flat=True))
    assert set(Zone.objects.visible_to(world.bureau_admin).values_list("pk", flat=True)) == both
    assert set(Zone.objects.visible_to(world.inspector).values_list("pk", flat=True)) == both
    assert list(Zone.objects.visible_to(world.zone_admin)) == [world.school.zone]
    for user in (world.teacher, world.head_teacher, world.school_admin, world.other_admin):
        assert not Zone.objects.visible_to(user).exists()


def test_a_visit_is_edited_by_its_lead_teacher_and_its_schools_admins_only(world):
    from django.utils import timezone

    from visits.models import Visit

    visit = Visit.objects.create(school=world.school, lead_teacher=world.teacher, visited_at=timezone.now())
    allowed = {user.username for user in world.users().values() if visit.can_edit(user)}
    assert allowed == {"teacher", "school_admin"}
