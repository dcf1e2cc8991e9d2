"""The best visits chosen (家访日志评选, issue 12): a school admin nominates with a reason and reviews
the public text; the bureau runs nominated → shortlisted → chosen; all staff read the chosen cases
without names, contacts or photos; chosen cases count in the teacher assessment."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from oversight.models import ExcellentCase
from oversight.services import case_advance, case_nominate, case_text_review
from schools.models import Phase
from tests import factories
from tests.test_dashboards import stats  # noqa: F401 - the fixture
from tests.test_oversight_review import submitted_visit


@pytest.fixture
def visit(world):
    phase = Phase.objects.filter(kind=Phase.Kind.FULL_ROUND).first() or factories.PhaseFactory(
        kind=Phase.Kind.FULL_ROUND
    )
    factories.GuardianFactory(student=world.student, name="王建国")
    return submitted_visit(
        world,
        phase=phase,
        situation="王小明在家主动做家务，王建国说小明最近爱读书，联系电话 13912345678。",
    )


def test_a_case_goes_from_nomination_to_the_gallery_without_the_familys_details(
    world,
    login,
    stats,  # noqa: F811 - before ``visit``: its campaign's phase is the one the visit is in
    visit,
):
    admin = login(world.school_admin)
    response = admin.post(reverse("case_nominate", args=[visit.public_id]), {"reason": "记录细致，措施具体"})
    case = ExcellentCase.objects.get()
    assert response.url == reverse("case_detail", args=[case.public_id])
    assert "王小明" not in case.public_text and "小明" not in case.public_text and "13912345678" not in case.public_text
    assert "该生在家主动做家务" in case.public_text

    bureau = login(world.bureau_admin)
    for status in ("shortlisted", "chosen"):
        bureau.post(reverse("case_advance", args=[case.public_id]), {"status": status})
    case.refresh_from_db()
    assert case.status == ExcellentCase.Status.CHOSEN
    gallery = login(world.other_teacher).get(reverse("case_gallery")).content.decode()
    assert case.title not in gallery, "not shown before the school reviewed its text"

    admin.post(
        reverse("case_detail", args=[case.public_id]),
        {"title": "用心的一次家访", "public_text": case.public_text.replace("联系电话", "")},
    )
    gallery = login(world.other_teacher).get(reverse("case_gallery")).content.decode()
    assert "用心的一次家访" in gallery and "王小明" not in gallery and "<img" not in gallery
    assessment = admin.get(reverse("teacher_assessment", args=[world.school.pk])).content.decode()
    assert "张老师" in assessment.split('data-testid="teacher-oversight"')[1]


def test_only_the_schools_admin_nominates_and_reviews_and_only_the_bureau_selects(world, visit):
    for user in (world.teacher, world.other_admin, world.bureau_admin):
        with pytest.raises(ValidationError):
            case_nominate(visit=visit, reason="好", acting_user=user)
    with pytest.raises(ValidationError):
        case_nominate(visit=visit, reason=" ", acting_user=world.school_admin)
    case = case_nominate(visit=visit, reason="好", acting_user=world.school_admin)
    with pytest.raises(ValidationError):
        case_nominate(visit=visit, reason="再推一次", acting_user=world.school_admin)
    with pytest.raises(ValidationError):
        case_text_review(case=case, title="t", public_text="x", acting_user=world.other_admin)
    for user in (world.inspector, world.school_admin):
        with pytest.raises(ValidationError):
            case_advance(case=case, status="shortlisted", acting_user=user)
    with pytest.raises(ValidationError):
        case_advance(case=case, status="chosen", acting_user=world.bureau_admin)  # not shortlisted yet


def test_the_selection_list_takes_fixed_queries(world, login, django_assert_max_num_queries):
    phase = factories.PhaseFactory(kind=Phase.Kind.FULL_ROUND)
    client = login(world.bureau_admin)
    case_nominate(visit=submitted_visit(world, phase=phase), reason="好", acting_user=world.school_admin)
    with django_assert_max_num_queries(CASE_LIST_QUERIES) as small:
        client.get(reverse("case_selection"))
    for _ in range(30):
        case_nominate(visit=submitted_visit(world, phase=phase), reason="好", acting_user=world.school_admin)
    with django_assert_max_num_queries(len(small.captured_queries)):
        page = client.get(reverse("case_selection")).content.decode()
    assert page.count("待学校审核") == 31


CASE_LIST_QUERIES = 5  # session, user, count, the page
