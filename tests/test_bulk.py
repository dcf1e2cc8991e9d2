"""Writing many rows fast (``schools.bulk``, used by ``seed_demo`` for the city-scale data set):
what goes in is what was given, defaults are filled as a save would, and the foreign keys checked
once at the end still refuse a row that points nowhere."""

import datetime

import pytest
from django.db import IntegrityError, connection, transaction

from schools.bulk import copies_in_background, foreign_keys_checked_at_end, uuid4_text, values_write
from students.models import Guardian, Student
from tests import factories
from tests.conftest import require_postgresql
from visits.models import Visit

pytestmark = pytest.mark.django_db


def test_values_write_stores_the_values_given_and_returns_the_keys_in_order():
    school = factories.SchoolFactory()
    rows = [
        (school.pk, "王小明", "M", "G001", "", None, '城关镇\t东街\n3号\\后院"北"'),
        (school.pk, "李小红", "F", "G002", "", datetime.date(2015, 3, 1), ""),
    ]
    columns = ("school_id", "name", "gender", "student_number", "id_number", "birth_date", "address")
    keys = values_write(Student, columns, rows)
    stored = {s.pk: s for s in Student.objects.all()}
    assert sorted(stored) == sorted(keys) and len(keys) == 2
    first, second = stored[keys[0]], stored[keys[1]]
    assert (first.name, first.birth_date, first.address) == ("王小明", None, '城关镇\t东街\n3号\\后院"北"')
    assert (second.name, second.birth_date, second.student_number) == ("李小红", datetime.date(2015, 3, 1), "G002")
    # Defaults as a save would give them: the status, a distinct public id per row, the update time.
    assert {first.status, second.status} == {Student.Status.ACTIVE}
    assert first.public_id != second.public_id
    assert first.updated_at is not None


def test_values_write_takes_json_lists_and_null_foreign_keys():
    school = factories.SchoolFactory()
    teacher = factories.UserFactory(school=school)
    columns = ("school_id", "lead_teacher_id", "visited_at", "method", "contents", "safety_report_id", "status")
    when = datetime.datetime(2026, 10, 9, 17, 30, tzinfo=datetime.UTC)
    (key,) = values_write(
        Visit, columns, [(school.pk, teacher.pk, when, "in_home", ["learning", "family"], None, "submitted")]
    )
    visit = Visit.objects.get(pk=key)
    assert visit.contents == ["learning", "family"]
    assert visit.visited_at == when and visit.safety_report_id is None and visit.version == 1


def test_values_write_refuses_the_primary_key_and_unknown_columns():
    with pytest.raises(ValueError, match="primary key"):
        values_write(Guardian, ("id", "name"), [(1, "王")])
    if connection.vendor == "postgresql":
        with pytest.raises(ValueError, match="no field"):
            values_write(Guardian, ("student_id", "nickname"), [(1, "王")])


def test_keys_checked_at_the_end_let_good_rows_in_and_are_back_afterwards():
    require_postgresql("the constraints dropped and added back are PostgreSQL's")
    school = factories.SchoolFactory()
    with transaction.atomic(), foreign_keys_checked_at_end([Student, Guardian]):
        (student,) = values_write(
            Student, ("school_id", "name", "gender", "student_number"), [(school.pk, "王", "M", "G9")]
        )
        values_write(Guardian, ("student_id", "name"), [(student, "王父")])
    assert Guardian.objects.get().student_id == student
    # The constraint is in force again: a guardian of no student is refused.
    with pytest.raises(IntegrityError), transaction.atomic():
        values_write(Guardian, ("student_id", "name"), [(student + 1000, "无")])
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_a_row_that_points_nowhere_fails_the_load_and_nothing_stays():
    require_postgresql("the constraints dropped and added back are PostgreSQL's")
    school = factories.SchoolFactory()
    with pytest.raises(IntegrityError), transaction.atomic(), foreign_keys_checked_at_end([Student, Guardian]):
        (student,) = values_write(
            Student, ("school_id", "name", "gender", "student_number"), [(school.pk, "王", "M", "G9")]
        )
        values_write(Guardian, ("student_id", "name"), [(student + 1000, "无")])
    assert not Student.objects.exists() and not Guardian.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = %s::regclass",
            [Guardian._meta.db_table],
        )
        assert cursor.fetchone() == (1,)


@pytest.mark.django_db(transaction=True)
def test_keys_checked_at_the_end_need_a_transaction():
    require_postgresql("on SQLite the keys are checked as they always are")
    with pytest.raises(RuntimeError, match="atomic"), foreign_keys_checked_at_end([Guardian]):
        pass


def test_copies_in_the_background_are_in_place_before_the_next_query():
    require_postgresql("the background copies are PostgreSQL's COPY")
    school = factories.SchoolFactory()
    columns = ("school_id", "name", "gender", "student_number")
    with transaction.atomic(), copies_in_background():
        keys = values_write(Student, columns, [(school.pk, f"学生{n}", "F", f"G{n}") for n in range(3000)])
        # The copy may still be running: the query waits for it.
        assert Student.objects.count() == 3000
        values_write(Guardian, ("student_id", "name"), [(key, "家长") for key in keys])
    assert Guardian.objects.filter(student__school=school).count() == 3000


def test_a_background_copy_that_fails_raises_and_the_block_rolls_back():
    require_postgresql("the background copies are PostgreSQL's COPY")
    school = factories.SchoolFactory()
    columns = ("school_id", "name", "gender", "student_number")
    with pytest.raises(IntegrityError), transaction.atomic(), copies_in_background():
        values_write(Student, columns, [(school.pk, "甲", "F", "G1")])
        values_write(Student, columns, [(school.pk, "乙", "F", "G1")])  # the same 学籍号
        Student.objects.count()
    assert not Student.objects.exists()


def test_uuid4_text_is_the_version_4_uuid_of_the_same_draw():
    import random
    import uuid

    ours, theirs = random.Random(20261130), random.Random(20261130)
    for _ in range(2000):
        text = uuid4_text(ours)
        assert text == str(uuid.UUID(int=theirs.getrandbits(128), version=4))
        assert uuid.UUID(text).version == 4
