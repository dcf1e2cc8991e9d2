"""The staff import (教职工名单导入): a school's teachers and admins, with the classes each one heads
and teaches, matched to accounts by mobile number (the login name teachers know by heart).

Checking reads every row and reports each problem with its row and column; applying stores the
valid rows in one transaction. New accounts get a one-time password that the result carries once,
for the admin to hand out. For each person in the file, the file governs only what it has a column
for: with a 任教班级 column their teaching assignments of the current school year become exactly
those listed, with a 班主任班级 column their headship does. Staff absent from the file are left as
they are.
"""

import re
import secrets
from dataclasses import dataclass, field

import openpyxl

from schools.importing import (
    Checked,
    Column,
    Importer,
    RowRef,
    Sheet,
    SheetError,
    clean_code,
    clean_name,
    clean_text,
    damaged_text,
    lookup_in_chunks,
    parse_class,
    parse_phone,
)
from schools.models import (
    SCHOOL_ROLES,
    Grade,
    ImportJob,
    Role,
    School,
    SchoolClass,
    SchoolYear,
    TeachingAssignment,
    User,
)

COLUMNS = [
    Column("name", "姓名", ("教师姓名", "教职工姓名"), required=True),
    Column("phone", "手机号", ("手机号码", "联系电话", "电话"), required=True),
    Column("role", "身份", ("角色", "职务", "岗位")),
    Column("head_class", "班主任班级", ("担任班主任班级", "所带班级")),
    Column("classes", "任教班级", ("任课班级",)),
    Column("subject", "任教学科", ("学科", "科目")),
]
LABELS = {column.key: column.label for column in COLUMNS}

# What a clerk may write in 身份, and what it means: the role, and whether a head class is required.
TEACHER, HEAD_TEACHER, ADMIN = "任课教师", "班主任", "学校管理员"
DUTY_WORDS = {
    TEACHER: TEACHER,
    "教师": TEACHER,
    "老师": TEACHER,
    "任课老师": TEACHER,
    "科任教师": TEACHER,
    "科任老师": TEACHER,
    HEAD_TEACHER: HEAD_TEACHER,
    "班主任教师": HEAD_TEACHER,
    "班主任老师": HEAD_TEACHER,
    ADMIN: ADMIN,
    "校长": ADMIN,
    "副校长": ADMIN,
    "管理员": ADMIN,
    "教务主任": ADMIN,
}
DUTY_ROLES = {TEACHER: Role.TEACHER, HEAD_TEACHER: Role.TEACHER, ADMIN: Role.SCHOOL_ADMIN}

NAME_MAX = 50
SUBJECT_MAX = 30
PREVIEW_ROWS = 200
# Letters and digits that cannot be misread when a password is read out or copied from paper.
UNAMBIGUOUS_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
PASSWORD_LENGTH = 10

_CLASS_SEPARATORS = re.compile(r"[、,，;；\s]+")
# A grade on its own, as left behind when a clerk types 「三年级 (2)班」 with a space.
_GRADE_ONLY = re.compile(r"^(?:[一二三四五六七八九十\d]+年级|初[一二三]|高[一二三]|[小中大]班)$")


def one_time_password() -> str:
    return "".join(secrets.choice(UNAMBIGUOUS_ALPHABET) for _ in range(PASSWORD_LENGTH))


def split_classes(text: str) -> list[str]:
    """「三年级(1)班、三年级(2)班」 → the class names, keeping 「三年级 (2)班」 together."""
    parts: list[str] = []
    for part in _CLASS_SEPARATORS.split(text):
        if not part:
            continue
        if parts and _GRADE_ONLY.match(parts[-1]):
            parts[-1] += part
        else:
            parts.append(part)
    return parts


def parse_class_name(text: str, grade: int | None = None) -> tuple[int, int]:
    """「三年级(2)班」 → (3, 2). A class written without its grade, as in 「三年级(1)班、(2)班」, is
    taken to be in ``grade``, the grade of the class before it."""
    for grade_text in (None, Grade(grade).label) if grade is not None else (None,):
        try:
            return parse_class(grade_text, text)
        except ValueError:
            continue
    raise ValueError(f"「{text}」不是可识别的班级，请写成“三年级(2)班”")


@dataclass
class StaffRow:
    row: RowRef
    name: str
    phone: str
    role: str | None  # None: 身份 left empty, so an existing account keeps its role
    head_class: SchoolClass | None
    classes: list[SchoolClass]
    subject: str
    class_label: str
    existing: User | None = None
    # The existing account's teaching assignments and headed classes in the current school year.
    assignments: dict[int, TeachingAssignment] = field(default_factory=dict)
    headed: set[int] = field(default_factory=set)
    changes: list[str] = field(default_factory=list)

    # The columns the row's sheet has: the file governs only those (a sheet without 任教班级 leaves
    # the teaching assignments of its people as they are).
    has_head_class: bool = False
    has_classes: bool = False
    has_subject: bool = False

    def final_role(self) -> str:
        return self.role or (self.existing.role if self.existing else Role.TEACHER)


@dataclass
class StaffChecked(Checked):
    """What the check found, and what applying needs besides the rows."""

    classes: list[SchoolClass] = field(default_factory=list)  # the school's classes this school year
    by_grade_number: dict[tuple[int, int], SchoolClass] = field(default_factory=dict)
    first_phone: dict[str, RowRef] = field(default_factory=dict)
    first_head: dict[int, RowRef] = field(default_factory=dict)


# --- the downloadable template -----------------------------------------------------------------

EXAMPLE = {
    "name": "李明",
    "phone": "13900000001",
    "role": HEAD_TEACHER,
    "head_class": "三年级(2)班",
    "classes": "三年级(2)班",
    "subject": "语文",
}
WIDTHS = {"name": 12, "phone": 16, "role": 14, "head_class": 16, "classes": 36, "subject": 12}
HELP = {
    "name": "教职工的真实姓名，不超过 50 个字。",
    "phone": "11 位手机号，同时是登录账号。新账号的初始密码在导入完成后显示一次，首次登录须修改密码。",
    "role": "填写“任课教师”“班主任”或“学校管理员”（也可写“校长”“教务主任”）；不填时新账号按任课教师，"
    "已有账号保持原身份。",
    "head_class": "担任班主任的班级，只能填一个，如“三年级(2)班”。身份为班主任时必填。"
    "已有此列时，表中教师未填写的，将取消其本学年的班主任。",
    "classes": "任课的班级，可填多个，用顿号、逗号或空格分隔，如“三年级(1)班、三年级(2)班”。"
    "已有此列时，表中教师的本学年任课班级将改为所填的班级。",
    "subject": "任教学科，如“语文”，不超过 30 个字，用于该教师所填的每个任教班级。",
}
NOTES = [
    "第 1 行是表头，请勿修改列名；可选列不需要时可以整列删除，删除的列不会改动已有数据。",
    "第 2 行是示例，请删除后再填写本校教职工。",
    "班级须先在「班级管理」中建好，填写的是本校当前学年的班级。",
    "表中没有列出的教职工账号保持不变。",
    "手机号已被其他学校或教育局账号使用的，无法导入，请联系教育局管理员。",
]


class StaffImporter(Importer):
    """The staff list (教职工名单): one row a person, matched to an account by mobile number."""

    kind = ImportJob.Kind.STAFF
    columns = COLUMNS
    checked_class = StaffChecked
    template_title = "教职工名单"
    template_examples = [EXAMPLE]
    template_widths = WIDTHS
    template_help = HELP
    template_notes = NOTES
    template_text_columns = {"phone"}
    template_choices = {"role": [TEACHER, HEAD_TEACHER, ADMIN]}

    def prepare(self, *, sheet: Sheet, school: School, checked: StaffChecked) -> StaffChecked:
        school_year = SchoolYear.current()
        if school_year is None:
            raise SheetError("尚未设置当前学年，无法对应班级。请联系教育局管理员设置学年。")
        checked.classes = list(SchoolClass.objects.filter(school=school, school_year=school_year))
        checked.by_grade_number = {(c.grade, c.number): c for c in checked.classes}
        return checked

    def preview_row(self, row: StaffRow) -> dict:
        return {"name": row.name, "class": row.class_label}

    def match_existing(self, rows: list[StaffRow], school: School, checked: StaffChecked, context) -> None:
        self._match_existing(rows, school, checked)
        self._check_admin_remains(rows, school, checked)

    def check_row(self, number: RowRef, cells: dict, checked: StaffChecked, context) -> StaffRow | None:
        classes = checked.by_grade_number

        def problem(key: str, message: str) -> None:
            checked.add_problem(number, LABELS[key], message)

        def find_class(key: str, text: str, grade: int | None = None) -> tuple[int | None, SchoolClass | None]:
            """The class a cell names, and its grade (for a next class written without one)."""
            try:
                grade_number = parse_class_name(text, grade)
            except ValueError as exc:
                problem(key, str(exc))
                return grade, None
            school_class = classes.get(grade_number)
            if school_class is None:
                problem(key, f"本校当前学年没有「{text}」这个班级，请先在「班级管理」中添加")
            return grade_number[0], school_class

        name = clean_name(cells.get("name"))
        if not name:
            problem("name", "姓名不能为空")
        elif len(name) > NAME_MAX:
            problem("name", f"姓名超过 {NAME_MAX} 个字")
        elif reason := damaged_text(name):
            problem("name", f"姓名「{name}」{reason}。请重新输入这个姓名")

        phone = ""
        raw_phone = clean_text(cells.get("phone"))
        if not raw_phone:
            problem("phone", "手机号不能为空（手机号就是登录账号）")
        else:
            try:
                phone = parse_phone(raw_phone)
            except ValueError:
                problem("phone", f"「{raw_phone}」不是有效的手机号，应为以 1 开头的 11 位数字")
            else:
                if not re.fullmatch(r"1[3-9]\d{9}", phone):
                    problem("phone", f"「{raw_phone}」是固定电话；手机号是登录账号，请填写 11 位手机号")
                    phone = ""

        duty = None
        role_text = clean_code(cells.get("role")) if "role" in cells else ""
        if role_text:
            duty = DUTY_WORDS.get(role_text)
            if duty is None:
                problem(
                    "role",
                    f"「{clean_text(cells.get('role'))}」不是可识别的身份，请填写“任课教师”“班主任”或“学校管理员”",
                )

        head_class = None
        head_text = clean_text(cells.get("head_class")) if "head_class" in cells else ""
        head_names = split_classes(head_text)
        if len(head_names) > 1:
            problem("head_class", f"「{head_text}」：班主任班级只能填写一个班级")
        elif head_names:
            _, head_class = find_class("head_class", head_names[0])
        elif duty == HEAD_TEACHER:
            problem("head_class", "身份是班主任，但没有填写班主任班级")

        taught: list[SchoolClass] = []
        class_text = clean_text(cells.get("classes")) if "classes" in cells else ""
        grade = None
        for class_name in split_classes(class_text):
            grade, school_class = find_class("classes", class_name, grade)
            if school_class is not None and school_class not in taught:
                taught.append(school_class)

        subject = clean_text(cells.get("subject")) if "subject" in cells else ""
        if len(subject) > SUBJECT_MAX:
            problem("subject", f"任教学科超过 {SUBJECT_MAX} 个字")

        if not phone:
            return None
        self.once_in_file(checked.first_phone, phone, number, checked, LABELS["phone"], "手机号重复")
        if head_class is not None:
            self.once_in_file(
                checked.first_head, head_class.pk, number, checked, LABELS["head_class"], "班主任班级相同"
            )
        labels = [c.name for c in taught if c != head_class]
        if head_class is not None:
            labels.insert(0, f"{head_class.name}（班主任）")
        return StaffRow(
            row=number,
            name=name,
            phone=phone,
            role=DUTY_ROLES[duty] if duty else None,
            head_class=head_class,
            classes=taught,
            subject=subject,
            class_label="、".join(labels),
            has_head_class="head_class" in cells,
            has_classes="classes" in cells,
            has_subject="subject" in cells,
        )

    def _match_existing(self, rows: list[StaffRow], school: School, checked: StaffChecked) -> None:
        phones = [row.phone for row in rows]
        by_username = {user.username: user for user in lookup_in_chunks(User.objects.all(), "username", phones)}
        # Accounts made by hand may have another login name but the phone on record.
        by_phone: dict[str, list[User]] = {}
        unmatched = [phone for phone in phones if phone not in by_username]
        for user in lookup_in_chunks(User.objects.filter(school=school, role__in=SCHOOL_ROLES), "phone", unmatched):
            by_phone.setdefault(user.phone, []).append(user)

        matched: dict[int, int] = {}
        for row in rows:
            user = by_username.get(row.phone)
            if user is not None and (user.school_id != school.pk or user.role not in SCHOOL_ROLES):
                checked.add_problem(
                    row.row,
                    LABELS["phone"],
                    "该手机号已是其他单位的登录账号，不能再导入本校。如该教师已调入本校，请联系教育局管理员办理调动",
                )
                continue
            if user is None:
                candidates = by_phone.get(row.phone, [])
                if len(candidates) > 1:
                    checked.add_problem(
                        row.row,
                        LABELS["phone"],
                        "本校有多个账号登记了这个手机号，无法确定是哪一个，请先在「教职工管理」中核对",
                    )
                    continue
                user = candidates[0] if candidates else None
            if user is not None:
                earlier = matched.setdefault(user.pk, row.row)
                if earlier != row.row:
                    checked.add_problem(row.row, LABELS["phone"], f"与第 {earlier} 行对应的是同一个账号")
                    continue
            row.existing = user

        existing_ids = [row.existing.pk for row in rows if row.existing is not None]
        assignments: dict[int, dict[int, TeachingAssignment]] = {}
        if existing_ids and any(row.has_classes for row in rows):
            for assignment in TeachingAssignment.objects.filter(
                school_class__in=[c.pk for c in checked.classes], teacher_id__in=existing_ids
            ):
                assignments.setdefault(assignment.teacher_id, {})[assignment.school_class_id] = assignment
        headed: dict[int, set[int]] = {}
        for school_class in checked.classes:
            if school_class.head_teacher_id:
                headed.setdefault(school_class.head_teacher_id, set()).add(school_class.pk)
        for row in rows:
            if row.existing is not None:
                row.assignments = assignments.get(row.existing.pk, {})
                row.headed = headed.get(row.existing.pk, set())
                row.changes = self._changes(row, checked)

    @staticmethod
    def _changes(row: StaffRow, checked: StaffChecked) -> list[str]:
        user = row.existing
        changes = []
        if user.real_name != row.name:
            changes.append("姓名")
        if not user.phone:
            changes.append("手机号")
        if user.role != row.final_role():
            changes.append("身份")
        if not user.is_active:
            changes.append("重新启用账号")
        if row.has_head_class and row.headed != ({row.head_class.pk} if row.head_class else set()):
            changes.append("班主任班级")
        if row.has_classes:
            if set(row.assignments) != {c.pk for c in row.classes}:
                changes.append("任教班级")
            if row.has_subject and any(
                row.assignments[c.pk].subject != row.subject for c in row.classes if c.pk in row.assignments
            ):
                changes.append("任教学科")
        return changes

    @staticmethod
    def _check_admin_remains(rows: list[StaffRow], school: School, checked: StaffChecked) -> None:
        """A file must not leave the school without an admin, which would lock it out of its own data."""
        valid = [row for row in rows if row.row not in checked.invalid_rows]
        demoting = [
            row
            for row in valid
            if row.existing is not None and row.existing.role == Role.SCHOOL_ADMIN and row.role == Role.TEACHER
        ]
        if not demoting:
            return
        if any(row.final_role() == Role.SCHOOL_ADMIN for row in valid):
            return
        demoted = {row.existing.pk for row in demoting}
        admins = User.objects.filter(school=school, role=Role.SCHOOL_ADMIN, is_active=True).exclude(pk__in=demoted)
        if admins.exists():
            return
        for row in demoting:
            checked.add_problem(row.row, LABELS["role"], "导入后本校将没有学校管理员，请至少保留一名学校管理员")

    def apply(self, *, checked: StaffChecked, school: School, acting_user: User | None) -> dict:
        """Store the valid rows. Runs inside the caller's transaction. The result lists the one-time
        passwords of the accounts it created; nothing else keeps them."""
        # Hashing a password is slow on purpose (about 0.4 s); every new account is hashed before the
        # first write, so the transaction holds no locks meanwhile.
        accounts: list[dict] = []
        users: dict[int, User] = {}  # row number -> account
        new_users: list[User] = []
        for row in checked.valid:
            if row.existing is not None:
                continue
            password = one_time_password()
            user = User(
                username=row.phone,
                phone=row.phone,
                real_name=row.name,
                role=row.final_role(),
                school=school,
                must_change_password=True,
            )
            user.set_password(password)
            # The school was resolved by the caller and the username checked for clashes by the check.
            user.full_clean(exclude=["school"], validate_unique=False, validate_constraints=False)
            new_users.append(user)
            users[row.row] = user
            accounts.append({"name": row.name, "username": row.phone, "password": password})
        User.objects.bulk_create(new_users, batch_size=500)

        changed_users: list[User] = []
        for row in checked.valid:
            if row.existing is None:
                continue
            user = row.existing
            users[row.row] = user
            if user.real_name != row.name or user.role != row.final_role() or not user.is_active or not user.phone:
                user.real_name = row.name
                user.role = row.final_role()
                user.is_active = True
                user.phone = user.phone or row.phone
                changed_users.append(user)
        User.objects.bulk_update(changed_users, ["real_name", "role", "is_active", "phone"], batch_size=500)

        self._apply_assignments(checked, users)
        self._apply_headship(checked, users)

        created = len(new_users)
        updated = sum(1 for row in checked.valid if row.existing is not None and row.changes)
        return {
            "created": created,
            "updated": updated,
            "unchanged": len(checked.valid) - created - updated,
            "accounts": accounts,
        }

    @staticmethod
    def _apply_assignments(checked: StaffChecked, users: dict[int, User]) -> None:
        removed: list[int] = []
        added: list[TeachingAssignment] = []
        resubjected: list[TeachingAssignment] = []
        for row in checked.valid:
            if not row.has_classes:
                continue
            wanted = {c.pk for c in row.classes}
            removed.extend(a.pk for class_id, a in row.assignments.items() if class_id not in wanted)
            for school_class in row.classes:
                assignment = row.assignments.get(school_class.pk)
                if assignment is None:
                    added.append(
                        TeachingAssignment(teacher=users[row.row], school_class=school_class, subject=row.subject)
                    )
                elif row.has_subject and assignment.subject != row.subject:
                    assignment.subject = row.subject
                    resubjected.append(assignment)
        TeachingAssignment.objects.filter(pk__in=removed).delete()
        TeachingAssignment.objects.bulk_create(added, batch_size=500)
        TeachingAssignment.objects.bulk_update(resubjected, ["subject"], batch_size=500)

    @staticmethod
    def _apply_headship(checked: StaffChecked, users: dict[int, User]) -> None:
        governed = [row for row in checked.valid if row.has_head_class]
        in_file = {users[row.row].pk for row in governed}
        wanted = {row.head_class.pk: users[row.row].pk for row in governed if row.head_class is not None}
        changed: list[SchoolClass] = []
        for school_class in checked.classes:
            if school_class.pk in wanted:
                head_id = wanted[school_class.pk]
            elif school_class.head_teacher_id in in_file:
                head_id = None
            else:
                continue
            if school_class.head_teacher_id != head_id:
                school_class.head_teacher_id = head_id
                changed.append(school_class)
        SchoolClass.objects.bulk_update(changed, ["head_teacher"], batch_size=500)


def template_workbook() -> openpyxl.Workbook:
    """The staff list template: the header row, one example row and a sheet of instructions."""
    return StaffImporter().template_workbook()
