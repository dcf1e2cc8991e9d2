"""The roster template (学生名册模板): downloaded, it imports as it stands once its class exists."""

from django.core.files.uploadedfile import SimpleUploadedFile

from schools.importing import validate_id_number
from schools.models import ImportJob, Role
from schools.services import import_job_apply, import_job_confirm, import_job_create, import_job_validate
from students.models import Category, Student
from students.roster_import import TEMPLATE_COLUMNS as COLUMNS
from students.roster_import import RosterImporter
from students.roster_template import template_workbook
from tests import factories

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_roster_template_has_every_roster_column_examples_and_instructions():
    workbook = template_workbook()

    sheet = workbook.worksheets[0]
    header = list(sheet[1])
    assert [cell.value for cell in header] == [column.label for column in COLUMNS]
    for cell, column in zip(header, COLUMNS, strict=True):
        assert cell.font.bold
        assert (cell.comment is not None) == column.required
    assert sheet.max_row == 3
    assert workbook.sheetnames == ["学生名册", "填写说明"]
    guide = [row[0] for row in workbook["填写说明"].iter_rows(values_only=True)]
    for column in COLUMNS:
        assert column.label in guide


def test_roster_template_example_id_numbers_pass_the_national_check():
    sheet = template_workbook().worksheets[0]
    position = [cell.value for cell in sheet[1]].index("身份证件号")

    id_numbers = [row[position] for row in sheet.iter_rows(min_row=2, values_only=True)]

    assert len(id_numbers) == 2
    for id_number in id_numbers:
        assert validate_id_number(id_number) == id_number


def test_roster_template_example_rows_import_as_students(db, tmp_path):
    school = factories.SchoolFactory()
    admin = factories.UserFactory(username="school-admin", role=Role.SCHOOL_ADMIN, school=school)
    school_class = factories.SchoolClassFactory(school=school, grade=3, number=2)
    path = tmp_path / "学生名册模板.xlsx"
    template_workbook().save(path)
    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type=XLSX)

    job = import_job_create(kind=ImportJob.Kind.ROSTER, school=school, uploaded_by=admin, upload=upload)
    job = import_job_validate(job_id=job.pk, importer=RosterImporter())
    assert job.problems == []
    assert job.preview["created"] == 2
    assert import_job_confirm(job=job, acting_user=admin, skip_invalid=False)
    job = import_job_apply(job_id=job.pk, importer=RosterImporter())

    assert job.status == ImportJob.Status.DONE, job.error
    assert job.result["created"] == 2
    boy = Student.objects.get(school=school, name="张小明")
    girl = Student.objects.get(school=school, name="李小红")
    assert (boy.name, boy.gender, girl.name, girl.gender) == ("张小明", "M", "李小红", "F")
    for student in (boy, girl):
        assert student.school_class == school_class
        assert student.student_number == f"G{student.id_number}"
        assert student.birth_date is not None
        assert student.guardians.count() == 1
    assert boy.categories_on() == []
    assert girl.categories_on() == [Category.LEFT_BEHIND]


def test_roster_template_imported_twice_changes_nothing_the_second_time(db, tmp_path):
    school = factories.SchoolFactory()
    admin = factories.UserFactory(username="school-admin", role=Role.SCHOOL_ADMIN, school=school)
    factories.SchoolClassFactory(school=school, grade=3, number=2)
    path = tmp_path / "学生名册模板.xlsx"
    template_workbook().save(path)

    results = []
    for _ in range(2):
        upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type=XLSX)
        job = import_job_create(kind=ImportJob.Kind.ROSTER, school=school, uploaded_by=admin, upload=upload)
        job = import_job_validate(job_id=job.pk, importer=RosterImporter())
        assert import_job_confirm(job=job, acting_user=admin, skip_invalid=False)
        job = import_job_apply(job_id=job.pk, importer=RosterImporter())
        results.append((job.result["created"], job.result["updated"], job.result["unchanged"]))

    assert results == [(2, 0, 0), (0, 0, 2)]
