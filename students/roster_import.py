"""The school roster import (DESIGN §9): an XLSX as kept by schools or exported from the national
student registry, matched to students by 学籍号.

Checking reads every row and reports each problem with its row and column; applying stores the
valid rows in one transaction. Students absent from the file are left as they are (a school often
uploads one grade at a time). The roster governs only the categories it has a column for, and only
those it created itself: a category a teacher recorded by hand is never ended by an import.
"""

import datetime
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.utils import timezone

from schools.bulk import values_write
from schools.importing import (
    Checked,
    Column,
    Importer,
    RowRef,
    Sheet,
    SheetError,
    chunked,
    clean_code,
    clean_name,
    clean_text,
    damaged_text,
    excel_id_damage,
    id_number_birth_date,
    id_number_gender,
    looks_like_other_document,
    lookup_chunk_size,
    lookup_in_chunks,
    lost_digits,
    parse_class,
    parse_date,
    parse_disability,
    parse_gender,
    parse_left_behind,
    parse_phone,
    parse_yes_no,
    validate_id_number,
)
from schools.models import ImportJob, School, SchoolClass, SchoolYear, User
from students.models import Category, Guardian, Student, StudentCategory

# Family members as the national student registry lists them (成员1姓名, 成员1关系, 成员1是否监护人,
# 成员1联系电话, 成员2…); the guardians are the members marked 是否监护人 = 是 (DESIGN §3).
MEMBERS = 4


def _member_columns(n: int) -> list[Column]:
    return [
        Column(f"member{n}_name", f"成员{n}姓名", (f"家庭成员{n}姓名", f"家庭成员{n}", f"成员{n}")),
        Column(
            f"member{n}_relation", f"成员{n}关系", (f"家庭成员{n}关系", f"成员{n}与学生关系", f"家庭成员{n}与学生关系")
        ),
        Column(f"member{n}_guardian", f"成员{n}是否监护人", (f"家庭成员{n}是否监护人",)),
        Column(
            f"member{n}_phone",
            f"成员{n}联系电话",
            (f"家庭成员{n}联系电话", f"成员{n}电话", f"成员{n}手机号", f"成员{n}联系方式", f"家庭成员{n}电话"),
        ),
    ]


COLUMNS = [
    Column("name", "姓名", ("学生姓名",), required=True),
    Column("gender", "性别"),
    Column("student_number", "学籍号", ("全国学籍号", "学生学籍号", "学籍辅号", "学籍编号"), required=True),
    Column("id_type", "身份证件类型", ("证件类型",)),
    Column("id_number", "身份证件号", ("身份证号", "身份证号码", "身份证件号码", "证件号码", "证件号")),
    Column("birth_date", "出生日期", ("出生年月日", "生日", "出生年月")),
    Column("grade", "年级", ("所在年级", "年级名称")),
    Column("class_name", "班级", ("班级名称", "所在班级", "班名"), required=True),
    Column(
        "address", "家庭住址", ("现住址", "家庭地址", "住址", "居住地址", "家庭现住址", "现居住地址", "家庭详细住址")
    ),
    Column("guardian_name", "监护人姓名", ("监护人", "家长姓名", "监护人1姓名", "第一监护人姓名", "监护人1", "家长")),
    Column(
        "guardian_relation",
        "监护人关系",
        ("与学生关系", "监护人1关系", "关系", "监护人与学生关系", "监护人1与学生关系", "与本人关系", "家长关系"),
    ),
    Column(
        "guardian_phone",
        "监护人联系电话",
        (
            "监护人电话",
            "监护人手机号",
            "家长电话",
            "家长联系电话",
            "联系电话",
            "监护人1联系电话",
            "监护人联系方式",
            "家长手机号",
            "监护人1电话",
            "监护人1手机号",
            "监护人手机",
            "第一监护人联系电话",
            "家长联系方式",
            "联系方式",
        ),
    ),
    Column("left_behind", "是否留守儿童", ("留守儿童", "留守儿童情况", "是否留守")),
    Column("migrant", "是否进城务工人员随迁子女", ("是否随迁子女", "是否进城务工随迁子女", "随迁子女")),
    Column("orphan", "是否孤儿", ("孤儿",)),
    Column("unsupported", "是否事实无人抚养儿童", ("事实无人抚养儿童",)),
    Column("economic_hardship", "是否家庭经济困难", ("是否经济困难", "是否建档立卡贫困户", "是否低保")),
    Column("disability_type", "残疾类型", ("残疾类别", "是否残疾")),
    *[column for n in range(1, MEMBERS + 1) for column in _member_columns(n)],
]
# The template shows one guardian; the member columns are read from registry exports.
TEMPLATE_COLUMNS = [column for column in COLUMNS if not column.key.startswith("member")]
LABELS = {column.key: column.label for column in COLUMNS}
GUARDIAN_KEYS = {"guardian_name": "name", "guardian_relation": "relation", "guardian_phone": "phone"}
MEMBER_KEYS = {"name": "name", "relation": "relation", "phone": "phone"}
FLAG_CATEGORIES = {
    "left_behind": Category.LEFT_BEHIND,
    "migrant": Category.MIGRANT,
    "orphan": Category.ORPHAN,
    "unsupported": Category.UNSUPPORTED,
    "economic_hardship": Category.ECONOMIC_HARDSHIP,
}
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
LOST_DIGITS = "单元格是数字格式，Excel 只保留 15 位数字，后几位已变成 0。请把该列设为“文本”后重新填写"
RESIDENT_ID_TYPES = {"", "居民身份证", "身份证", "中华人民共和国居民身份证", "内地居民身份证"}
OTHER_DOCUMENT = (
    "「{text}」不是居民身份证号码，像是港澳台居民或外籍学生的证件号（港澳身份证、通行证、台胞证、护照等）。"
    "请在「身份证件类型」列填写证件类型（如“港澳台居民居住证”“港澳居民来往内地通行证”“护照”）"
)


@dataclass(slots=True)
class RosterRow:
    row: RowRef
    student_number: str
    values: dict  # Student field -> value, only for columns the row's sheet has
    guardians: list[dict] | None  # Guardian fields, in order; None: the sheet has no guardian column
    categories: dict[str, bool]  # category -> in force, only for columns the row's sheet has
    class_label: str
    existing: "StoredStudent | None" = None
    changes: list[str] = field(default_factory=list)


@dataclass
class RosterContext:
    classes: dict[tuple[int, int], SchoolClass]
    class_names: dict[int, str] = field(default_factory=dict)  # SchoolClass.name, a translated label: once
    today: datetime.date = field(default_factory=timezone.localdate)
    student_numbers: dict[str, RowRef] = field(default_factory=dict)
    id_numbers: dict[str, RowRef] = field(default_factory=dict)


class RosterImporter(Importer):
    """The roster (学生名册): one row a student, matched by 学籍号 (DESIGN §9)."""

    kind = ImportJob.Kind.ROSTER
    columns = COLUMNS
    # Visits depend on these: a roster without them leaves teachers without a way to the family.
    watched = ("id_number", "guardian_phone", "address")

    def prepare(self, *, sheet: Sheet, school: School, checked: Checked) -> RosterContext:
        school_year = SchoolYear.current()
        if school_year is None:
            raise SheetError("尚未设置当前学年，无法对应班级。请联系教育局管理员设置学年。")
        classes = {(c.grade, c.number): c for c in SchoolClass.objects.filter(school=school, school_year=school_year)}
        return RosterContext(classes=classes, class_names={c.pk: c.name for c in classes.values()})

    def preview(self, rows: list, sheet: Sheet) -> dict:
        preview = super().preview(rows, sheet)
        if not sheet.has("guardian_phone") and any(sheet.has(f"member{n}_phone") for n in range(1, MEMBERS + 1)):
            # The registry's members carry the guardians' phones.
            preview["warnings"] = [w for w in preview["warnings"] if LABELS["guardian_phone"] not in w]
        return preview

    def template_workbook(self):
        """The roster template (students.roster_template): its examples are dated from today."""
        from students.roster_template import template_workbook

        return template_workbook()

    def preview_row(self, row: RosterRow) -> dict:
        return {"name": row.values.get("name", ""), "class": row.class_label}

    def check_row(self, ref: RowRef, cells: dict, checked: Checked, context: RosterContext) -> RosterRow | None:
        def problem(key: str, message: str) -> None:
            checked.add_problem(ref, LABELS[key], message)

        values: dict = {}
        name = clean_name(cells.get("name"))
        if not name:
            problem("name", "姓名不能为空")
        elif len(name) > 50:
            problem("name", "姓名超过 50 个字")
        elif reason := damaged_text(name):
            problem("name", f"姓名「{name}」{reason}。请按户口本重新输入这个姓名")
        values["name"] = name

        student_number = clean_code(cells.get("student_number"))
        if not student_number:
            problem("student_number", "学籍号不能为空")
        elif lost_digits(cells.get("student_number")):
            problem("student_number", LOST_DIGITS)
        elif not student_number.isalnum() or not 6 <= len(student_number) <= 32 or not student_number.isascii():
            problem("student_number", f"「{student_number}」不是有效的学籍号（6—32 位字母或数字）")
        else:
            self.once_in_file(context.student_numbers, student_number, ref, checked, LABELS["student_number"], "学籍号")

        id_valid, id_number = self._check_id_number(cells, problem)
        if "id_number" in cells:
            values["id_number"] = id_number
            if id_number:
                self.once_in_file(context.id_numbers, id_number, ref, checked, LABELS["id_number"], "身份证件号")

        if "gender" in cells and clean_text(cells.get("gender")):
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
            checked.add_problem(ref, "性别", "性别不能为空")

        if "birth_date" in cells:
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
                    if birth_date > context.today or birth_date.year < 1980:
                        problem("birth_date", f"出生日期 {birth_date:%Y-%m-%d} 不在合理范围内")
                    elif id_valid and birth_date != id_number_birth_date(id_number):
                        problem("birth_date", f"出生日期与身份证件号不一致（表中是「{clean_text(raw)}」）")
        elif id_valid:
            values["birth_date"] = id_number_birth_date(id_number)

        class_label = clean_text(cells.get("grade")) + clean_text(cells.get("class_name"))
        try:
            grade, class_number = parse_class(cells.get("grade"), cells.get("class_name"))
        except ValueError as exc:
            # parse_class would speak of the grade first; an empty 班级 cell is what the clerk must fix.
            problem("class_name", str(exc) if clean_text(cells.get("class_name")) else "班级不能为空")
        else:
            school_class = context.classes.get((grade, class_number))
            if school_class is None:
                problem("class_name", f"本校当前学年没有「{class_label}」这个班级，请先在「班级管理」中添加")
            else:
                values["school_class_id"] = school_class.pk
                class_label = context.class_names[school_class.pk]

        if "address" in cells:
            address = clean_text(cells.get("address"))
            if len(address) > 200:
                problem("address", "超过 200 个字")
            elif reason := damaged_text(address):
                problem("address", f"家庭住址{reason}。请重新输入")
            values["address"] = address
        if "disability_type" in cells:
            disability = parse_disability(cells.get("disability_type"))
            if len(disability) > 30:
                problem("disability_type", "超过 30 个字")
            values["disability_type"] = disability

        guardians = self._check_guardians(cells, problem)

        categories: dict[str, bool] = {}
        for key, category in FLAG_CATEGORIES.items():
            if key in cells:
                try:
                    parse = parse_left_behind if key == "left_behind" else parse_yes_no
                    categories[category] = parse(cells.get(key))
                except ValueError as exc:
                    problem(key, str(exc))
        if "disability_type" in cells:
            categories[Category.DISABILITY] = bool(values.get("disability_type"))

        if not student_number:
            return None
        return RosterRow(
            row=ref,
            student_number=student_number,
            values=values,
            guardians=guardians,
            categories=categories,
            class_label=class_label,
        )

    @staticmethod
    def _check_id_number(cells: dict, problem) -> tuple[bool, str]:
        """(whether it is a valid resident ID number, the number as stored)."""
        if "id_number" not in cells:
            return False, ""
        raw = cells.get("id_number")
        id_number = clean_code(raw)
        if not id_number:
            return False, ""
        if damage := excel_id_damage(raw):
            problem("id_number", damage)
            return False, id_number
        id_type = clean_text(cells.get("id_type")).replace(" ", "")
        if id_type in RESIDENT_ID_TYPES:
            if not id_type and looks_like_other_document(id_number):
                problem("id_number", OTHER_DOCUMENT.format(text=clean_text(raw)))
                return False, id_number
            try:
                validate_id_number(id_number)
            except ValueError as exc:
                problem("id_number", str(exc))
                return False, id_number
            return True, id_number
        if len(id_number) > 18:
            problem("id_number", "证件号超过 18 位")
        return False, id_number

    @staticmethod
    def _check_guardians(cells: dict, problem) -> list[dict] | None:
        """The guardians a row names, in order: the 监护人 columns, then the registry's family members
        marked 是否监护人 = 是 (every member named, when the file has no such column). None when the
        row's sheet has no guardian column at all (the stored guardians stay as they are)."""
        entries = _guardian_entries(tuple(cells))
        if entries is None:
            return None
        guardians: list[dict] = []
        for fields, flag_key in entries:
            guardian: dict = {}
            for model_field, key in fields.items():
                raw = cells.get(key)
                if model_field == "phone":
                    guardian["phone"] = ""
                    if clean_text(raw):
                        try:
                            guardian["phone"] = parse_phone(raw)
                        except ValueError as exc:
                            problem(key, str(exc))
                    continue
                text = clean_text(raw)
                if model_field == "name":
                    text = clean_name(raw)
                    if reason := damaged_text(text):
                        problem(key, f"姓名「{text}」{reason}。请重新输入")
                limit = 50 if model_field == "name" else 20
                if len(text) > limit:
                    problem(key, f"超过 {limit} 个字")
                guardian[model_field] = text
            if not any(guardian.values()):
                continue
            if flag_key and flag_key in cells:
                try:
                    if not parse_yes_no(cells.get(flag_key)):
                        continue
                except ValueError as exc:
                    problem(flag_key, str(exc))
                    continue
            if any(g.get("name") == guardian.get("name") and guardian.get("name") for g in guardians):
                continue  # the same person in the 监护人 columns and among the members
            guardians.append(guardian)
        return guardians

    def match_existing(self, rows: list[RosterRow], school: School, checked: Checked, context) -> None:
        """Find the stored student of each row by 学籍号 and what the row would change. The students,
        their guardians and categories are read as plain values, 900 rows a query (2,000 on
        PostgreSQL; no model
        instances, no query per row); a row keeps only what applying it needs."""
        today = timezone.localdate()
        # Each ID number's 学籍号 in the file (None when rows give it different ones): the stored
        # owners kept are only those some row would clash with, not one a stored student.
        numbers_by_id: dict[str, str | None] = {}
        for row in rows:
            if id_number := row.values.get("id_number"):
                known = numbers_by_id.setdefault(id_number, row.student_number)
                if known is not None and known != row.student_number:
                    numbers_by_id[id_number] = None
        id_owner: dict[str, str] = {
            id_number: owner
            for id_number, owner in lookup_in_chunks(
                Student.objects.order_by().values_list("id_number", "student_number"),
                "id_number",
                list(numbers_by_id),
            )
            if owner != numbers_by_id[id_number]
        }
        del numbers_by_id
        # Stored students are held as dicts a chunk at a time: 2,000 at most, for memory's sake.
        for chunk in chunked(rows, min(lookup_chunk_size(Student), MATCH_CHUNK)):
            found = {
                stored["student_number"]: stored
                for stored in lookup_in_chunks(
                    Student.objects.order_by().values("id", *STORED_FIELDS),
                    "student_number",
                    [row.student_number for row in chunk],
                )
            }
            ids = [stored["id"] for stored in found.values()]
            guardians: dict[int, list[tuple]] = {}
            for guardian in lookup_in_chunks(
                Guardian.objects.order_by("id").values_list(*GUARDIAN_FIELDS), "student_id", ids
            ):
                guardians.setdefault(guardian[1], []).append(guardian)
            categories: dict[int, list[tuple]] = {}
            for record in lookup_in_chunks(
                StudentCategory.objects.order_by("student", "category", "start").values_list(
                    "id", "student_id", "category", "start", "end", "source"
                ),
                "student_id",
                ids,
            ):
                categories.setdefault(record[1], []).append(record)
            for row in chunk:
                stored = found.get(row.student_number)
                if (
                    stored is not None
                    and stored["school_id"] != school.pk
                    and stored["status"] == Student.Status.ACTIVE
                ):
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
                if stored is None:
                    row.existing, row.changes = None, []
                    continue
                for key in KEPT_WHEN_BLANK:  # a blank cell keeps what is stored, it never erases it
                    if key in row.values and row.values[key] in ("", None) and stored.get(key) not in ("", None):
                        del row.values[key]
                existing = StoredStudent(
                    pk=stored["id"],
                    values=stored,
                    guardians=guardians.get(stored["id"], []),
                    categories=categories.get(stored["id"], []),
                )
                row.changes = self._changes(row, existing, school, today)
                row.existing = existing if row.changes else UNCHANGED

    @staticmethod
    def _changes(row: RosterRow, student: "StoredStudent", school: School, today: datetime.date) -> list[str]:
        stored = student.values
        changes = [FIELD_LABELS[key] for key, value in row.values.items() if stored[key] != value]
        if stored["school_id"] != school.pk:
            changes.append(FIELD_LABELS["school_id"])
        if stored["status"] != Student.Status.ACTIVE:
            changes.append(FIELD_LABELS["status"])
        updated, created = _guardian_changes(row, student)
        if updated or created:
            changes.append("监护人")
        in_force = student.categories_on(today)
        for category, wanted in row.categories.items():
            if wanted != (category in in_force) and (wanted or student.roster_category(category, today)):
                changes.append(str(Category(category).label))
        return changes

    def apply(self, *, checked: Checked, school: School, acting_user: User | None) -> dict:
        """Store the valid rows. Runs inside the caller's transaction.

        New students are not run through ``full_clean``: ``check_row`` has already refused every
        value the model would (lengths, choices, blanks; tests/test_roster_import.py holds the two
        to the same rules), and the class was found among the school's own."""
        today = timezone.localdate()
        new_rows = [row for row in checked.valid if row.existing is None]
        # Inserted as plain rows, a few thousand at a time (``schools.bulk.values_write``: COPY on
        # PostgreSQL): a model instance a row (and Django's per-field preparation of each value) was
        # most of the time applying took, and 50,000 instances at once a hundred MB. No signal is
        # lost: bulk_create sends none either.
        roster, active = StudentCategory.Source.ROSTER, Student.Status.ACTIVE
        for chunk in chunked(new_rows, CREATE_CHUNK):
            keys = values_write(
                Student,
                ("school_id", "student_number", "status", *STUDENT_FIELDS),
                [(school.pk, row.student_number, active, *_student_values(row.values)) for row in chunk],
            )
            values_write(
                Guardian,
                ("student_id", "name", "relation", "phone"),
                [
                    (key, g.get("name", ""), g.get("relation", ""), g.get("phone", ""))
                    for key, row in zip(keys, chunk, strict=True)
                    for g in row.guardians or []
                ],
            )
            values_write(
                StudentCategory,
                ("student_id", "category", "start", "source"),
                [
                    (key, category, today, roster)
                    for key, row in zip(keys, chunk, strict=True)
                    for category, wanted in row.categories.items()
                    if wanted
                ],
            )
        guardians: list[Guardian] = []
        categories: list[StudentCategory] = []

        changed: list[Student] = []
        changed_guardians: list[Guardian] = []
        ended: list[StudentCategory] = []
        withdrawn: list[int] = []
        now = timezone.now()
        for row in checked.valid:
            stored = row.existing
            if stored is None or not row.changes:
                continue
            fields = {key: stored.values[key] for key in STUDENT_FIELDS} | row.values
            changed.append(Student(pk=stored.pk, school=school, status=Student.Status.ACTIVE, updated_at=now, **fields))
            updated, created = _guardian_changes(row, stored)
            for guardian, wanted in updated:
                values = dict(zip(("name", "relation", "phone"), guardian[2:], strict=True)) | wanted
                changed_guardians.append(Guardian(pk=guardian[0], student_id=stored.pk, **values))
            guardians.extend(Guardian(student_id=stored.pk, **wanted) for wanted in created)
            in_force = stored.categories_on(today)
            for category, wanted in row.categories.items():
                if wanted and category not in in_force:
                    categories.append(
                        StudentCategory(
                            student_id=stored.pk, category=category, start=today, source=StudentCategory.Source.ROSTER
                        )
                    )
                elif not wanted and category in in_force:
                    record = stored.roster_category(category, today)
                    if record is None:
                        continue
                    if record[3] >= today:
                        withdrawn.append(record[0])
                    else:
                        ended.append(StudentCategory(pk=record[0], end=today - datetime.timedelta(days=1)))

        update_fields = sorted(
            {key for row in checked.valid if row.changes for key in row.values} | {"school", "status"}
        )
        Student.objects.bulk_update(changed, [*update_fields, "updated_at"], batch_size=500)
        Guardian.objects.bulk_create(guardians, batch_size=500)
        Guardian.objects.bulk_update(changed_guardians, ["name", "relation", "phone"], batch_size=500)
        StudentCategory.objects.bulk_create(categories, batch_size=500)
        StudentCategory.objects.bulk_update(ended, ["end"], batch_size=500)
        StudentCategory.objects.filter(pk__in=withdrawn).delete()
        created_count = len(new_rows)
        return {
            "created": created_count,
            "updated": len(changed),
            "unchanged": len(checked.valid) - created_count - len(changed),
        }


# Fields a blank cell leaves as stored when the row updates a student: a clerk's file with these
# cells empty (a column filled for new pupils only, a formula with no saved result) must not
# erase them; the student's page changes them one by one.
KEPT_WHEN_BLANK = ("id_number", "birth_date", "address")
CREATE_CHUNK = 2000
MATCH_CHUNK = 2000
# The Student fields a row may set, and those compared or kept besides.
STUDENT_FIELDS = ("name", "gender", "id_number", "birth_date", "school_class_id", "address", "disability_type")
STORED_FIELDS = ("student_number", "school_id", "status", *STUDENT_FIELDS)
GUARDIAN_FIELDS = ("id", "student_id", "name", "relation", "phone")


_FIELD_DEFAULTS = {"id_number": "", "birth_date": None, "address": "", "disability_type": ""}


def _student_values(values: dict) -> Iterator[object]:
    """A new student's STUDENT_FIELDS in order: the row's values, the model's defaults for the rest."""
    for key in STUDENT_FIELDS:
        yield values[key] if key in values else _FIELD_DEFAULTS.get(key)


@functools.lru_cache(maxsize=256)  # a few column layouts a county
def _guardian_entries(keys: tuple[str, ...]) -> list[tuple[dict[str, str], str]] | None:
    """Where a sheet with these column keys names guardians: (Guardian field -> column key, the
    column key of the member's 是否监护人 flag or ""), in order; None when it names none. Worked
    out once a sheet, not once a row."""
    has_guardian = any(key in keys for key in GUARDIAN_KEYS)
    members = [n for n in range(1, MEMBERS + 1) if f"member{n}_name" in keys or f"member{n}_phone" in keys]
    if not has_guardian and not members:
        return None
    entries: list[tuple[dict[str, str], str]] = []
    if has_guardian:
        entries.append(({v: k for k, v in GUARDIAN_KEYS.items() if k in keys}, ""))
    for n in members:
        fields = {v: f"member{n}_{k}" for k, v in MEMBER_KEYS.items() if f"member{n}_{k}" in keys}
        entries.append((fields, f"member{n}_guardian"))
    return entries


@dataclass(slots=True)
class StoredStudent:
    """A stored student as the import compares and updates it: its values (STORED_FIELDS), its
    guardians (GUARDIAN_FIELDS tuples, by id) and its category records ((id, student_id, category,
    start, end, source), ordered as StudentCategory is)."""

    pk: int
    values: dict
    guardians: list[tuple]
    categories: list[tuple]

    def categories_on(self, day: datetime.date) -> set[str]:
        """The category codes in force on ``day`` (as Student.categories_on)."""
        return {record[2] for record in self.categories if record[3] <= day and (record[4] is None or record[4] >= day)}

    def roster_category(self, category: str, day: datetime.date) -> tuple | None:
        """The first record of ``category`` the roster created that is in force on ``day``."""
        for record in self.categories:
            if (
                record[2] == category
                and record[5] == StudentCategory.Source.ROSTER
                and record[3] <= day
                and (record[4] is None or record[4] >= day)
            ):
                return record
        return None


# What an unchanged row keeps of its stored student: nothing but that there is one.
UNCHANGED = StoredStudent(pk=0, values={}, guardians=[], categories=[])


def _guardian_changes(row: RosterRow, student: StoredStudent) -> tuple[list[tuple[tuple, dict]], list[dict]]:
    """How the stored guardians (in order) become those the row lists: (stored guardian, new values)
    to update in place, and the guardians to add. Guardians the row does not list stay as they are."""
    stored = student.guardians
    updated: list[tuple[tuple, dict]] = []
    created: list[dict] = []
    for position, wanted in enumerate(row.guardians or []):
        if position >= len(stored):
            created.append(wanted)
        else:
            current = dict(zip(("name", "relation", "phone"), stored[position][2:], strict=True))
            if any(current[key] != value for key, value in wanted.items()):
                updated.append((stored[position], wanted))
    return updated, created
