"""The school roster import (DESIGN §9): an XLSX as kept by schools or exported from the national
student registry, matched to students by 学籍号.

Checking reads every row and reports each problem with its row and column; applying stores the
valid rows in one transaction. Students absent from the file are left as they are (a school often
uploads one grade at a time). The roster governs only the categories it has a column for, and only
those it created itself: a category a teacher recorded by hand is never ended by an import.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from django.utils import timezone

from schools.importing import (
    PROGRESS_EVERY,
    Checked,
    Column,
    Sheet,
    SheetError,
    clean_code,
    clean_text,
    excel_error,
    id_number_birth_date,
    id_number_gender,
    lost_digits,
    parse_class,
    parse_date,
    parse_gender,
    parse_phone,
    parse_yes_no,
    validate_id_number,
)
from schools.models import ImportJob, School, SchoolClass, SchoolYear, User
from students.models import Category, Guardian, Student, StudentCategory

COLUMNS = [
    Column("name", "姓名", ("学生姓名",), required=True),
    Column("gender", "性别"),
    Column("student_number", "学籍号", ("全国学籍号", "学生学籍号", "学籍辅号", "学籍编号"), required=True),
    Column("id_type", "身份证件类型", ("证件类型",)),
    Column("id_number", "身份证件号", ("身份证号", "身份证号码", "身份证件号码", "证件号码", "证件号")),
    Column("birth_date", "出生日期", ("出生年月日", "生日")),
    Column("grade", "年级", ("所在年级", "年级名称")),
    Column("class_name", "班级", ("班级名称", "所在班级", "班名"), required=True),
    Column("address", "家庭住址", ("现住址", "家庭地址", "住址", "居住地址", "家庭现住址")),
    Column("guardian_name", "监护人姓名", ("监护人", "家长姓名", "监护人1姓名", "成员1姓名")),
    Column("guardian_relation", "监护人关系", ("与学生关系", "监护人1关系", "成员1关系", "关系")),
    Column(
        "guardian_phone",
        "监护人联系电话",
        ("监护人电话", "监护人手机号", "家长电话", "家长联系电话", "联系电话", "监护人1联系电话", "成员1联系电话"),
    ),
    Column("left_behind", "是否留守儿童", ("留守儿童",)),
    Column("migrant", "是否进城务工人员随迁子女", ("是否随迁子女", "是否进城务工随迁子女", "随迁子女")),
    Column("orphan", "是否孤儿", ("孤儿",)),
    Column("unsupported", "是否事实无人抚养儿童", ("事实无人抚养儿童",)),
    Column("economic_hardship", "是否家庭经济困难", ("是否经济困难", "是否建档立卡贫困户", "是否低保")),
    Column("disability_type", "残疾类型", ("残疾类别",)),
]
LABELS = {column.key: column.label for column in COLUMNS}
FLAG_CATEGORIES = {
    "left_behind": Category.LEFT_BEHIND,
    "migrant": Category.MIGRANT,
    "orphan": Category.ORPHAN,
    "unsupported": Category.UNSUPPORTED,
    "economic_hardship": Category.ECONOMIC_HARDSHIP,
}
NO_DISABILITY = {"", "无", "否", "非残疾", "无残疾"}
FIELD_LABELS = {
    "name": "姓名",
    "gender": "性别",
    "id_number": "身份证件号",
    "birth_date": "出生日期",
    "school_class_id": "班级",
    "address": "家庭住址",
    "disability_type": "残疾类型",
    "school_id": "学校（转入）",
    "status": "在读状态",
}
PREVIEW_ROWS = 200
LOST_DIGITS = "单元格是数字格式，Excel 只保留 15 位数字，后几位已变成 0。请把该列设为“文本”后重新填写"
RESIDENT_ID_TYPES = {"", "居民身份证", "身份证", "中华人民共和国居民身份证"}


@dataclass
class RosterRow:
    row: int
    student_number: str
    values: dict  # Student field -> value, only for columns the file has
    guardian: dict  # Guardian field -> value, only for columns the file has
    categories: dict[str, bool]  # category -> in force, only for columns the file has
    class_label: str
    existing: Student | None = None
    changes: list[str] = field(default_factory=list)


class RosterImporter:
    kind = ImportJob.Kind.ROSTER
    columns = COLUMNS

    def check(self, *, sheet: Sheet, school: School, progress: Callable[[int], None]) -> Checked:
        school_year = SchoolYear.current()
        if school_year is None:
            raise SheetError("尚未设置当前学年，无法对应班级。请联系教育局管理员设置学年。")
        classes = {(c.grade, c.number): c for c in SchoolClass.objects.filter(school=school, school_year=school_year)}
        checked = Checked()
        rows: list[RosterRow] = []
        first_seen: dict[str, int] = {}
        first_id_seen: dict[str, int] = {}
        for done, (number, cells) in enumerate(sheet.rows, start=1):
            row = self._check_row(number, cells, sheet, classes, checked)
            if row is not None:
                earlier = first_seen.setdefault(row.student_number, number)
                if earlier != number:
                    checked.add_problem(number, LABELS["student_number"], f"与第 {earlier} 行的学籍号重复")
                id_number = row.values.get("id_number")
                if id_number:
                    earlier_id = first_id_seen.setdefault(id_number, number)
                    if earlier_id != number:
                        checked.add_problem(number, LABELS["id_number"], f"与第 {earlier_id} 行的身份证件号重复")
                rows.append(row)
            if done % PROGRESS_EVERY == 0:
                progress(done)
        self._match_existing(rows, school, checked)
        checked.valid = [row for row in rows if row.row not in checked.invalid_rows]
        checked.problems.sort(key=lambda problem: problem.row)
        checked.preview = self._preview(checked.valid)
        return checked

    def _check_row(self, number, cells, sheet, classes, checked) -> RosterRow | None:
        def problem(key: str, message: str) -> None:
            checked.add_problem(number, LABELS[key], message)

        for key, value in cells.items():
            if excel_error(value):
                problem(key, f"单元格是 Excel 错误值「{value}」，请修正公式或填入实际内容")
        values: dict = {}
        name = clean_text(cells.get("name"))
        if not name:
            problem("name", "姓名不能为空")
        elif len(name) > 50:
            problem("name", "姓名超过 50 个字")
        values["name"] = name

        student_number = clean_code(cells.get("student_number"))
        if not student_number:
            problem("student_number", "学籍号不能为空")
        elif lost_digits(cells.get("student_number")):
            problem("student_number", LOST_DIGITS)
        elif not student_number.isalnum() or not 6 <= len(student_number) <= 32 or not student_number.isascii():
            problem("student_number", f"「{student_number}」不是有效的学籍号（6—32 位字母或数字）")

        id_number = clean_code(cells.get("id_number")) if sheet.has("id_number") else ""
        id_valid = False
        if id_number:
            if lost_digits(cells.get("id_number")):
                problem("id_number", LOST_DIGITS)
            elif clean_text(cells.get("id_type")) in RESIDENT_ID_TYPES:
                try:
                    validate_id_number(id_number)
                    id_valid = True
                except ValueError as exc:
                    problem("id_number", str(exc))
            elif len(id_number) > 18:
                problem("id_number", "证件号超过 18 位")
        if sheet.has("id_number"):
            values["id_number"] = id_number

        if sheet.has("gender") and clean_text(cells.get("gender")):
            try:
                values["gender"] = parse_gender(cells.get("gender"))
            except ValueError as exc:
                problem("gender", str(exc))
            else:
                if id_valid and values["gender"] != id_number_gender(id_number):
                    problem("gender", "性别与身份证件号不一致")
        elif id_valid:
            values["gender"] = id_number_gender(id_number)
        else:
            checked.add_problem(number, "性别", "性别不能为空")

        if sheet.has("birth_date"):
            raw = cells.get("birth_date")
            if raw is None or clean_text(raw) == "":
                values["birth_date"] = id_number_birth_date(id_number) if id_valid else None
            else:
                try:
                    birth_date = parse_date(raw)
                except ValueError as exc:
                    problem("birth_date", str(exc))
                else:
                    values["birth_date"] = birth_date
                    if birth_date > timezone.localdate() or birth_date.year < 1980:
                        problem("birth_date", f"出生日期 {birth_date:%Y-%m-%d} 不在合理范围内")
                    elif id_valid and birth_date != id_number_birth_date(id_number):
                        problem("birth_date", "出生日期与身份证件号不一致")
        elif id_valid:
            values["birth_date"] = id_number_birth_date(id_number)

        class_label = clean_text(cells.get("grade")) + clean_text(cells.get("class_name"))
        try:
            grade, class_number = parse_class(cells.get("grade"), cells.get("class_name"))
        except ValueError as exc:
            # parse_class would speak of the grade first; an empty 班级 cell is what the clerk must fix.
            problem("class_name", str(exc) if clean_text(cells.get("class_name")) else "班级不能为空")
        else:
            school_class = classes.get((grade, class_number))
            if school_class is None:
                problem(
                    "class_name",
                    f"本校当前学年没有「{class_label}」这个班级，请先在「班级管理」中添加",
                )
            else:
                values["school_class_id"] = school_class.pk
                class_label = school_class.name

        for key, limit in (("address", 200), ("disability_type", 30)):
            if sheet.has(key):
                text = clean_text(cells.get(key))
                if key == "disability_type" and text in NO_DISABILITY:
                    text = ""
                if len(text) > limit:
                    problem(key, f"超过 {limit} 个字")
                values[key] = text

        guardian: dict = {}
        for key, model_field, limit in (("guardian_name", "name", 50), ("guardian_relation", "relation", 20)):
            if sheet.has(key):
                text = clean_text(cells.get(key))
                if len(text) > limit:
                    problem(key, f"超过 {limit} 个字")
                guardian[model_field] = text
        if sheet.has("guardian_phone"):
            guardian["phone"] = ""
            if clean_text(cells.get("guardian_phone")):
                try:
                    guardian["phone"] = parse_phone(cells.get("guardian_phone"))
                except ValueError as exc:
                    problem("guardian_phone", str(exc))

        categories: dict[str, bool] = {}
        for key, category in FLAG_CATEGORIES.items():
            if sheet.has(key):
                try:
                    categories[category] = parse_yes_no(cells.get(key))
                except ValueError as exc:
                    problem(key, str(exc))
        if sheet.has("disability_type"):
            categories[Category.DISABILITY] = bool(values.get("disability_type"))

        if not student_number:
            return None
        return RosterRow(
            row=number,
            student_number=student_number,
            values=values,
            guardian=guardian,
            categories=categories,
            class_label=class_label,
        )

    def _match_existing(self, rows: list[RosterRow], school: School, checked: Checked) -> None:
        numbers = [row.student_number for row in rows]
        existing: dict[str, Student] = {}
        for start in range(0, len(numbers), 900):
            for student in Student.objects.filter(student_number__in=numbers[start : start + 900]).prefetch_related(
                "guardians", "categories"
            ):
                existing[student.student_number] = student
        id_numbers = [row.values["id_number"] for row in rows if row.values.get("id_number")]
        id_owner: dict[str, str] = {}
        for start in range(0, len(id_numbers), 900):
            id_owner.update(
                Student.objects.filter(id_number__in=id_numbers[start : start + 900]).values_list(
                    "id_number", "student_number"
                )
            )
        for row in rows:
            student = existing.get(row.student_number)
            if student is not None and student.school_id != school.pk and student.status == Student.Status.ACTIVE:
                checked.add_problem(
                    row.row,
                    LABELS["student_number"],
                    "该学籍号已登记在本县另一所学校的在读学生名下，请先由原学校办理转出",
                )
                continue
            owner = id_owner.get(row.values.get("id_number") or "")
            if owner and owner != row.student_number:
                checked.add_problem(row.row, LABELS["id_number"], "该身份证件号已登记在另一个学籍号的学生名下")
                continue
            row.existing = student
            row.changes = self._changes(row, student, school) if student else []

    @staticmethod
    def _changes(row: RosterRow, student: Student, school: School) -> list[str]:
        changes = [FIELD_LABELS[key] for key, value in row.values.items() if getattr(student, key) != value]
        if student.school_id != school.pk:
            changes.append(FIELD_LABELS["school_id"])
        if student.status != Student.Status.ACTIVE:
            changes.append(FIELD_LABELS["status"])
        guardians = list(student.guardians.all())
        first = guardians[0] if guardians else None
        guardian_given = row.guardian and any(row.guardian.values())
        if guardian_given and (first is None or any(getattr(first, k) != v for k, v in row.guardian.items())):
            changes.append("监护人")
        today = timezone.localdate()
        in_force = set(student.categories_on(today))
        for category, wanted in row.categories.items():
            if wanted != (category in in_force) and (wanted or _roster_category(student, category, today)):
                changes.append(str(Category(category).label))
        return changes

    @staticmethod
    def _preview(rows: list[RosterRow]) -> dict:
        created = [row for row in rows if row.existing is None]
        updated = [row for row in rows if row.existing is not None and row.changes]
        listed = sorted(created + updated, key=lambda row: row.row)[:PREVIEW_ROWS]
        return {
            "created": len(created),
            "updated": len(updated),
            "unchanged": len(rows) - len(created) - len(updated),
            "rows": [
                {
                    "row": row.row,
                    "name": row.values.get("name", ""),
                    "class": row.class_label,
                    "action": "新增" if row.existing is None else "更新",
                    "changes": "、".join(row.changes),
                }
                for row in listed
            ],
        }

    def apply(self, *, checked: Checked, school: School, acting_user: User | None) -> dict:
        """Store the valid rows. Runs inside the caller's transaction."""
        today = timezone.localdate()
        new_rows = [row for row in checked.valid if row.existing is None]
        students = [
            Student(school=school, student_number=row.student_number, status=Student.Status.ACTIVE, **row.values)
            for row in new_rows
        ]
        for student in students:
            # Foreign keys were resolved by the check; validating them again costs a query a row.
            student.full_clean(
                exclude=["student_number", "school", "school_class"], validate_unique=False, validate_constraints=False
            )
        Student.objects.bulk_create(students, batch_size=500)
        guardians: list[Guardian] = []
        categories: list[StudentCategory] = []
        for row, student in zip(new_rows, students, strict=True):
            if row.guardian and any(row.guardian.values()):
                guardians.append(Guardian(student=student, **row.guardian))
            categories.extend(
                StudentCategory(student=student, category=c, start=today, source=StudentCategory.Source.ROSTER)
                for c, wanted in row.categories.items()
                if wanted
            )

        changed: list[Student] = []
        changed_guardians: list[Guardian] = []
        ended: list[StudentCategory] = []
        withdrawn: list[int] = []
        now = timezone.now()
        for row in checked.valid:
            student = row.existing
            if student is None or not row.changes:
                continue
            for key, value in row.values.items():
                setattr(student, key, value)
            student.school = school
            student.status = Student.Status.ACTIVE
            student.updated_at = now
            changed.append(student)
            if row.guardian and any(row.guardian.values()):
                first = next(iter(student.guardians.all()), None)
                if first is None:
                    guardians.append(Guardian(student=student, **row.guardian))
                elif any(getattr(first, key) != value for key, value in row.guardian.items()):
                    for key, value in row.guardian.items():
                        setattr(first, key, value)
                    changed_guardians.append(first)
            in_force = set(student.categories_on(today))
            for category, wanted in row.categories.items():
                if wanted and category not in in_force:
                    categories.append(
                        StudentCategory(
                            student=student, category=category, start=today, source=StudentCategory.Source.ROSTER
                        )
                    )
                elif not wanted and category in in_force:
                    record = _roster_category(student, category, today)
                    if record is None:
                        continue
                    if record.start >= today:
                        withdrawn.append(record.pk)
                    else:
                        record.end = today - datetime.timedelta(days=1)
                        ended.append(record)

        update_fields = sorted(
            {key for row in checked.valid if row.changes for key in row.values} | {"school", "status"}
        )
        Student.objects.bulk_update(changed, [*update_fields, "updated_at"], batch_size=500)
        Guardian.objects.bulk_create(guardians, batch_size=500)
        Guardian.objects.bulk_update(changed_guardians, ["name", "relation", "phone"], batch_size=500)
        StudentCategory.objects.bulk_create(categories, batch_size=500)
        StudentCategory.objects.bulk_update(ended, ["end"], batch_size=500)
        StudentCategory.objects.filter(pk__in=withdrawn).delete()
        return {
            "created": len(students),
            "updated": len(changed),
            "unchanged": len(checked.valid) - len(students) - len(changed),
        }


def _roster_category(student: Student, category: str, day: datetime.date) -> StudentCategory | None:
    for record in student.categories.all():
        if record.category == category and record.source == StudentCategory.Source.ROSTER and record.in_force_on(day):
            return record
    return None
