"""The demo county (DESIGN §10): zones, schools, classes, staff and students of one made-up county,
so that ``make run`` shows a working campaign on a fresh machine.

Every name and number is drawn from one ``random.Random(seed)`` in a fixed order, so a seed builds
the same county on any machine and any database. Rows go in with ``schools.bulk`` (COPY on PostgreSQL,
``bulk_create`` elsewhere; the students as tuples, the organisation as instances): a build costs the
same queries for a thousand students as for a million, apart from one write per batch of rows.
Seeded rows are generated valid by construction and are not passed through ``full_clean()``, which
would cost a query or more per row; the campaign calendar is the exception (five rows).
"""

import bisect
import datetime
import graphlib
import itertools
import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.apps import apps as django_apps
from django.contrib.auth.hashers import make_password
from django.db import models, transaction
from django.utils import timezone

from schools.bulk import indexes_built_at_end, rows_write, uuid4_text, values_write
from schools.models import (
    AuditEvent,
    Campaign,
    Grade,
    ImportJob,
    InspectorAssignment,
    Phase,
    Role,
    School,
    SchoolClass,
    SchoolYear,
    TeachingAssignment,
    User,
    Zone,
)
from students.models import Category, Guardian, Student, StudentCategory

DEMO_PASSWORD = "demo12345"  # noqa: S105 - printed on the console and in the README by design
DEFAULT_SEED = 20261129
DEFAULT_SCHOOLS = 8
DEFAULT_STUDENTS_PER_SCHOOL = 240
BATCH_SIZE = 2000
COUNTY = "示例县"
# 民权县, 商丘市, 河南省: the area code every generated resident ID starts with.
AREA_CODE = "411421"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role_label: str
    real_name: str


# Fixed names, so that the README and a demonstration can speak of them.
BUREAU = DemoAccount("bureau", "教育局管理员", "吴建华")
INSPECTOR = DemoAccount("inspector", "教育局包联领导", "刘卫东")
ZONE_ADMIN = DemoAccount("zone", "片区管理员", "陈志刚")
SCHOOL_ADMIN = DemoAccount("school", "学校管理员", "孙丽华")
HEAD_TEACHER = DemoAccount("head", "班主任", "李静")
TEACHER = DemoAccount("teacher", "任课教师", "张伟")
DEMO_ACCOUNTS = (BUREAU, INSPECTOR, ZONE_ADMIN, SCHOOL_ADMIN, HEAD_TEACHER, TEACHER)
DEMO_USERNAMES = frozenset(account.username for account in DEMO_ACCOUNTS)


class DemoCountyError(Exception):
    """The database is not in a state the demo builder may write to; the message says why, in Chinese."""


@dataclass(frozen=True)
class DemoCountySummary:
    zones: int
    schools: int
    classes: int
    staff: int
    students: int
    seconds: float


# --- the county's places --------------------------------------------------------------------

ZONES = (
    ("Z01", "城关片区", ("城关镇", "新城街道", "城郊乡")),
    ("Z02", "东山片区", ("东山镇", "孙六镇", "白云乡", "石桥镇")),
    ("Z03", "西河片区", ("西河镇", "双塔乡", "柳林镇", "南湖乡")),
)
URBAN_TOWNS = frozenset({"城关镇", "新城街道"})
STREETS = (
    "人民路",
    "建设路",
    "解放路",
    "文化路",
    "新华街",
    "中山路",
    "朝阳路",
    "育才路",
    "东关街",
    "西大街",
    "南环路",
    "北环路",
)
VILLAGE_SUFFIXES = "庄营集楼寨店湾岗洼屯坡岭"


@dataclass(frozen=True)
class _FixedSchool:
    name: str
    kind: str
    zone: int
    town: str
    village: str = ""


# The first schools of every build, in this order: a small build still has several kinds, and the
# demo accounts always find 城关第一小学.
FIXED_SCHOOLS = (
    _FixedSchool("城关第一小学", School.Kind.PRIMARY, 0, "城关镇"),
    _FixedSchool("东山镇中心小学", School.Kind.PRIMARY, 1, "东山镇"),
    _FixedSchool("西河镇李庄教学点", School.Kind.TEACHING_POINT, 2, "西河镇", "李庄"),
    _FixedSchool("城关实验幼儿园", School.Kind.KINDERGARTEN, 0, "城关镇"),
    _FixedSchool("城关第一初级中学", School.Kind.JUNIOR, 0, "城关镇"),
    _FixedSchool("东山镇九年一贯制学校", School.Kind.NINE_YEAR, 1, "东山镇"),
    _FixedSchool("西河镇中心小学", School.Kind.PRIMARY, 2, "西河镇"),
    _FixedSchool("城关第二小学", School.Kind.PRIMARY, 0, "城关镇"),
)
# Schools past the fixed ones are village schools, named after their village; most are primary.
GENERATED_KINDS = (
    (School.Kind.PRIMARY, 68),
    (School.Kind.TEACHING_POINT, 12),
    (School.Kind.KINDERGARTEN, 12),
    (School.Kind.JUNIOR, 5),
    (School.Kind.NINE_YEAR, 3),
)
KIND_SUFFIX = {
    School.Kind.PRIMARY: "小学",
    School.Kind.TEACHING_POINT: "教学点",
    School.Kind.KINDERGARTEN: "幼儿园",
    School.Kind.JUNIOR: "中学",
    School.Kind.NINE_YEAR: "九年一贯制学校",
}
KIND_GRADES = {
    School.Kind.KINDERGARTEN: (Grade.K1, Grade.K2, Grade.K3),
    School.Kind.PRIMARY: tuple(range(1, 7)),
    School.Kind.JUNIOR: tuple(range(7, 10)),
    School.Kind.NINE_YEAR: tuple(range(1, 10)),
    School.Kind.TEACHING_POINT: (1, 2, 3),
}
# Class size limits of the national standards: a grade gets as many classes as it needs to stay under.
KIND_CLASS_SIZE = {
    School.Kind.KINDERGARTEN: 30,
    School.Kind.PRIMARY: 45,
    School.Kind.JUNIOR: 50,
    School.Kind.NINE_YEAR: 45,
}
SUBJECTS = ("语文", "数学", "英语", "科学", "体育", "音乐", "美术")
KINDERGARTEN_SUBJECTS = ("体育", "音乐", "美术")

# --- names ------------------------------------------------------------------------------------

# Common surnames with their rough share of the population (per mille), most common first.
SURNAMES = (
    ("王", 71), ("李", 70), ("张", 67), ("刘", 54), ("陈", 45), ("杨", 31), ("黄", 22), ("赵", 20),
    ("吴", 20), ("周", 19), ("徐", 13), ("孙", 12), ("马", 11), ("朱", 11), ("胡", 10), ("郭", 10),
    ("何", 9), ("高", 9), ("林", 9), ("罗", 8), ("郑", 8), ("梁", 7), ("谢", 6), ("宋", 6), ("唐", 6),
    ("许", 5), ("韩", 5), ("冯", 5), ("邓", 5), ("曹", 5), ("彭", 5), ("曾", 4), ("肖", 4), ("田", 4),
    ("董", 4), ("袁", 4), ("潘", 4), ("于", 4), ("蒋", 4), ("蔡", 3), ("余", 3), ("杜", 3), ("叶", 3),
    ("程", 3), ("苏", 3), ("魏", 3), ("吕", 3), ("丁", 3), ("任", 3), ("沈", 3), ("姚", 3), ("卢", 3),
    ("姜", 2), ("崔", 2), ("钟", 2), ("谭", 2), ("陆", 2), ("汪", 2), ("范", 2), ("金", 2), ("石", 2),
    ("廖", 2), ("贾", 2), ("夏", 2), ("付", 2), ("方", 2), ("白", 2), ("邹", 2), ("孟", 2), ("熊", 2),
    ("秦", 2), ("邱", 2), ("江", 2), ("尹", 2), ("薛", 2), ("闫", 2), ("段", 2), ("雷", 2), ("侯", 2),
    ("史", 2), ("陶", 1), ("贺", 1), ("顾", 1), ("毛", 1), ("郝", 1), ("龚", 1), ("邵", 1), ("万", 1),
    ("钱", 1), ("严", 1), ("武", 1), ("戴", 1), ("孔", 1), ("汤", 1),
)  # fmt: skip
BOY_NAMES = (
    "子轩", "浩然", "宇轩", "梓豪", "俊杰", "浩宇", "子墨", "宇航", "博文", "皓轩", "泽宇", "一鸣",
    "思远", "明轩", "天佑", "铭泽", "睿泽", "俊熙", "梓睿", "雨泽", "奕辰", "晨阳", "家豪", "锦程",
    "鹏飞", "天宇", "文博", "昊天", "振宇", "嘉豪", "俊宇", "瑞霖", "明哲", "立诚", "宇恒", "云帆",
)  # fmt: skip
GIRL_NAMES = (
    "欣怡", "梓涵", "诗涵", "雨涵", "一诺", "可馨", "紫涵", "雨欣", "思涵", "佳怡", "梦琪", "语嫣",
    "欣妍", "紫萱", "子涵", "依诺", "若汐", "佳琪", "雨桐", "静怡", "思琪", "诗琪", "梓萱", "欣然",
    "可欣", "语桐", "心怡", "雅琪", "晓妍", "雨萱", "嘉怡", "梦瑶", "佳欣", "诗雨", "婉清", "安琪",
)  # fmt: skip
# Two-character names are also put together from a first and a second character, for variety.
BOY_FIRST = "子浩宇梓俊博泽睿一天明嘉思晨奕锦文家志皓昊铭佳鸿承煜逸"
BOY_SECOND = "轩然豪杰航博泽辰阳睿铭涛鹏翔凯瑞霖哲诚恒帆宸熙远乐安彬"
BOY_SINGLE = "浩宇轩博杰磊鑫晨昊阳凯豪睿航涛鹏彬"
GIRL_FIRST = "欣梓诗雨可紫思佳梦语子依若静心雅晓嘉芷婉一沐书美"
GIRL_SECOND = "怡涵琪萱妍馨桐瑶彤然悦雯婷琳蕾茜颖宁菲璐洁希汐"
GIRL_SINGLE = "欣怡涵琪婷雪悦萱妍茜璐瑶蕾露颖"
MEN_NAMES = (
    "建国", "建军", "国强", "志强", "志刚", "卫东", "保国", "建华", "建伟", "晓东", "文斌", "明亮",
    "海峰", "振华", "国庆", "春生", "光明", "德胜", "海涛", "永刚", "红军", "子健", "俊峰", "宏伟",
    "伟", "强", "军", "磊", "勇", "杰", "涛", "斌", "鹏", "浩", "亮", "超", "刚", "峰",
)  # fmt: skip
WOMEN_NAMES = (
    "秀英", "桂英", "秀兰", "玉兰", "丽娟", "秀梅", "海燕", "春梅", "晓燕", "丽丽", "婷婷", "雪梅",
    "凤英", "桂兰", "玉梅", "金凤", "淑珍", "红霞", "雅婷", "晓雨", "佳慧", "梦洁", "文静", "思雨",
    "艳", "丽", "芳", "娟", "敏", "静", "霞", "燕", "玲", "红", "慧", "娜", "莉", "倩", "颖",
)  # fmt: skip
# Grandparents, born in the 1950s and 1960s, have the names of their generation.
OLDER_MEN_NAMES = MEN_NAMES[:21]
OLDER_WOMEN_NAMES = WOMEN_NAMES[:18]
# (male, elder) -> given names
ADULT_NAMES = {
    (True, False): MEN_NAMES,
    (False, False): WOMEN_NAMES,
    (True, True): OLDER_MEN_NAMES,
    (False, True): OLDER_WOMEN_NAMES,
}
PHONE_PREFIXES = tuple(f"{p}{d}" for p in ("13", "15", "18") for d in "0123456789" if f"{p}{d}" != "154")
DISABILITY_TYPES = ("视力残疾", "听力残疾", "言语残疾", "肢体残疾", "智力残疾", "精神残疾", "多重残疾")
LEFT_BEHIND_NOTES = ("父母均在外务工", "父亲在外务工", "母亲在外务工", "单亲家庭")

# Shares of the categories, near those the county reports. The roster columns (DESIGN §9) bring
# those the registry knows; teachers record the others by hand.
LEFT_BEHIND_SHARE = 0.15
MIGRANT_SHARE = 0.08
ORPHAN_SHARE = 0.003
UNSUPPORTED_SHARE = 0.004
INDEPENDENT_SHARES = (
    (Category.ECONOMIC_HARDSHIP, 0.10),
    (Category.DISABILITY, 0.015),
    (Category.LEARNING_DIFFICULTY, 0.05),
    (Category.PSYCHOLOGICAL, 0.01),
    (Category.FAMILY_CRISIS, 0.005),
    (Category.DROPOUT_RISK, 0.005),
    (Category.MAJOR_CHANGE, 0.02),
)
# Words about schoolwork and leaving school do not fit children in kindergarten.
NOT_IN_KINDERGARTEN = frozenset({Category.LEARNING_DIFFICULTY, Category.DROPOUT_RISK, Category.MAJOR_CHANGE})
ROSTER_CATEGORIES = frozenset(
    {
        Category.LEFT_BEHIND,
        Category.MIGRANT,
        Category.ORPHAN,
        Category.UNSUPPORTED,
        Category.ECONOMIC_HARDSHIP,
        Category.DISABILITY,
    }
)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_number_check_char(body: str) -> str:
    """The check character (GB 11643) of the first 17 digits of a resident ID number."""
    return _ID_CHECK[sum(int(digit) * weight for digit, weight in zip(body, _ID_WEIGHTS, strict=True)) % 11]


# --- the calendar -----------------------------------------------------------------------------


def school_year_bounds(*, today: datetime.date) -> tuple[str, datetime.date, datetime.date]:
    """Name, first and last day of the school year containing ``today`` (August 1 to July 31)."""
    first = today.year if today.month >= 8 else today.year - 1
    return f"{first}-{first + 1}", datetime.date(first, 8, 1), datetime.date(first + 1, 7, 31)


def campaign_calendar(*, today: datetime.date) -> tuple[int, list[tuple[str, datetime.date, datetime.date]]]:
    """The campaign year that ``today`` belongs to and its phases, as the bureau's plan dates them.

    The plan leaves gaps (July; January to May of the next year). A demo on such a day would show
    a campaign with no phase running, so the phase that started last before today runs on to today.
    """
    year = today.year if today >= datetime.date(today.year, 5, 20) else today.year - 1
    phases = [
        (Phase.Kind.PLAN, datetime.date(year, 5, 20), datetime.date(year, 5, 31)),
        (Phase.Kind.FULL_ROUND, datetime.date(year, 6, 1), datetime.date(year, 6, 30)),
        (Phase.Kind.REVIEW, datetime.date(year, 8, 1), datetime.date(year, 9, 30)),
        (Phase.Kind.REVISIT, datetime.date(year, 10, 1), datetime.date(year, 11, 30)),
        (Phase.Kind.SUMMARY, datetime.date(year, 12, 1), datetime.date(year, 12, 31)),
    ]
    if not any(start <= today <= end for _, start, end in phases):
        latest = max(index for index, (_, start, _) in enumerate(phases) if start <= today)
        kind, start, _ = phases[latest]
        phases[latest] = (kind, start, today)
    return year, phases


# --- the plan of the county, drawn before anything is written ---------------------------------


@dataclass
class _ClassPlan:
    grade: int
    number: int
    size: int
    head: User
    row: SchoolClass | None = None


@dataclass
class _SchoolPlan:
    index: int
    name: str
    kind: str
    zone: int
    town: str
    village: str
    students: int
    admin: User | None = None
    classes: list[_ClassPlan] = field(default_factory=list)
    # (teacher, subject, the classes taught)
    teaching: list[tuple[User, str, list[_ClassPlan]]] = field(default_factory=list)
    row: School | None = None

    @property
    def staff(self) -> list[User]:
        return [self.admin, *(c.head for c in self.classes), *(teacher for teacher, _, _ in self.teaching)]


class _Generator:
    """Draws names, numbers and addresses from one seeded random source, and remembers what it has
    handed out where a value must be unique (usernames, resident ID numbers)."""

    def __init__(self, *, seed: int, taken_usernames: set[str], password: str) -> None:
        self.rng = random.Random(seed)
        self.ids = random.Random(seed * 31 + 7)
        self.taken_usernames = taken_usernames
        self.password = password
        # The 17-digit bodies of the ID numbers handed out, as ints: a million ints are a few dozen MB.
        self.id_bodies: set[int] = set()
        self.surnames = [surname for surname, _ in SURNAMES]
        self.surname_weights = list(itertools.accumulate(weight for _, weight in SURNAMES))
        # Villages are named after the families that founded them: 王庄, 李营, 张集.
        self.villages: dict[str, list[str]] = {}
        for _, _, towns in ZONES:
            for town in towns:
                names = [f"{surname}{suffix}" for surname, _ in SURNAMES[:60] for suffix in VILLAGE_SUFFIXES]
                self.rng.shuffle(names)
                self.villages[town] = names
        self.unused_villages = {town: list(names) for town, names in self.villages.items()}

    def public_id(self) -> str:
        """A version-4 UUID from its own seeded source: the same county gets the same ids, and the
        other draws are the same with or without them."""
        return uuid4_text(self.ids)

    def chance(self, share: float) -> bool:
        return self.rng.random() < share

    def surname(self) -> str:
        point = self.rng.random() * self.surname_weights[-1]
        return self.surnames[bisect.bisect_right(self.surname_weights, point)]

    def child_given_name(self, gender: str) -> str:
        male = gender == Student.Gender.MALE
        roll = self.rng.random()
        if roll < 0.2:
            return self.rng.choice(BOY_SINGLE if male else GIRL_SINGLE)
        if roll < 0.55:
            return self.rng.choice(BOY_NAMES if male else GIRL_NAMES)
        first = self.rng.choice(BOY_FIRST if male else GIRL_FIRST)
        second = self.rng.choice(BOY_SECOND if male else GIRL_SECOND)
        while second == first:
            second = self.rng.choice(BOY_SECOND if male else GIRL_SECOND)
        return first + second

    def adult_name(self, *, male: bool, surname: str | None = None, elder: bool = False) -> str:
        return (surname or self.surname()) + self.rng.choice(ADULT_NAMES[male, elder])

    def mobile(self) -> str:
        return self.rng.choice(PHONE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"

    def username(self) -> str:
        """An unused mobile number: staff log in with the number they know by heart."""
        while True:
            phone = self.mobile()
            if phone not in self.taken_usernames:
                self.taken_usernames.add(phone)
                return phone

    def account(self, *, role: str, demo: DemoAccount | None = None) -> User:
        """An unsaved account; ``demo`` gives it a fixed username and name."""
        male = self.chance(0.35)  # most teachers in county schools are women
        return User(
            username=demo.username if demo else self.username(),
            password=self.password,
            real_name=demo.real_name if demo else self.adult_name(male=male),
            phone=self.mobile(),
            role=role,
            must_change_password=False,
        )

    def new_village(self, town: str) -> str | None:
        names = self.unused_villages[town]
        return names.pop() if names else None

    def street_address(self, town: str) -> str:
        return f"{COUNTY}{town}{self.rng.choice(STREETS)}{self.rng.randint(1, 300)}号"

    def home_address(self, *, town: str, village: str) -> str:
        if town in URBAN_TOWNS:
            return self.street_address(town)
        # Most families live in the school's own village, the others in the twenty around it.
        if not village or self.chance(0.5):
            village = self.villages[town][self.rng.randrange(20)]
        return f"{COUNTY}{town}{village}村{self.rng.randint(1, 12)}组"

    def id_number(self, *, male: bool, earliest: datetime.date, days: int) -> tuple[str, datetime.date]:
        """A resident ID number (GB 11643) not handed out before, with a birth date in the ``days``
        from ``earliest`` and a sequence number whose parity is the gender (odd for boys)."""
        choices = 500 if male else 499  # boys 001, 003 … 999; girls 002, 004 … 998
        while True:
            born = earliest + datetime.timedelta(days=self.rng.randrange(days))
            prefix = f"{AREA_CODE}{born:%Y%m%d}"
            start = self.rng.randrange(choices)
            for step in range(choices):
                body = f"{prefix}{2 * ((start + step) % choices) + (1 if male else 2):03d}"
                if int(body) not in self.id_bodies:
                    self.id_bodies.add(int(body))
                    return body + id_number_check_char(body), born
            # Every sequence of that day is taken (a county of several million children): another day.


def _class_layout(*, kind: str, students: int) -> list[tuple[int, int, int]]:
    """(grade, class number, class size) for a school of ``kind`` with ``students`` students, spread
    evenly over its grades and then over the classes of each grade."""
    grades = KIND_GRADES[kind]
    layout: list[tuple[int, int, int]] = []
    for position, grade in enumerate(grades):
        in_grade = students // len(grades) + (1 if position < students % len(grades) else 0)
        # A teaching point has one class a grade, however many children it has.
        count = 1 if kind == School.Kind.TEACHING_POINT else max(1, math.ceil(in_grade / KIND_CLASS_SIZE[kind]))
        for number in range(1, count + 1):
            layout.append((int(grade), number, in_grade // count + (1 if number <= in_grade % count else 0)))
    return layout


def _school_plans(*, generator: _Generator, schools: int, students_per_school: int) -> list[_SchoolPlan]:
    """Name, kind, zone and town of every school: the fixed ones first, then village schools."""
    rng = generator.rng
    for fixed in FIXED_SCHOOLS:
        if fixed.village in generator.unused_villages[fixed.town]:
            generator.unused_villages[fixed.town].remove(fixed.village)
    kinds = [kind for kind, _ in GENERATED_KINDS]
    kind_weights = list(itertools.accumulate(weight for _, weight in GENERATED_KINDS))
    plans = []
    for index in range(schools):
        if index < len(FIXED_SCHOOLS):
            fixed = FIXED_SCHOOLS[index]
            plans.append(
                _SchoolPlan(index, fixed.name, fixed.kind, fixed.zone, fixed.town, fixed.village, students_per_school)
            )
            continue
        zone = index % len(ZONES)
        kind = rng.choices(kinds, cum_weights=kind_weights)[0]
        towns = ZONES[zone][2]
        town = rng.choice(towns)
        village = generator.new_village(town)
        for other in towns:
            if village is not None:
                break
            town, village = other, generator.new_village(other)
        if village is None:
            # Thousands of schools in three zones use up the villages; a number keeps the names unique.
            name, village = f"{town}第{index + 1}{KIND_SUFFIX[kind]}", ""
        else:
            name = f"{town}{village}{KIND_SUFFIX[kind]}"
        plans.append(_SchoolPlan(index, name, kind, zone, town, village, students_per_school))
    return plans


def _school_staff_plans(*, generator: _Generator, plans: list[_SchoolPlan]) -> None:
    """Give every school its admin, a head teacher for every class and a few subject teachers; the
    first school's admin, the head teacher of its 三年级（1）班 and one subject teacher are demo accounts."""
    rng = generator.rng
    for plan in plans:
        first = plan.index == 0
        plan.admin = generator.account(role=Role.SCHOOL_ADMIN, demo=SCHOOL_ADMIN if first else None)
        for grade, number, size in _class_layout(kind=plan.kind, students=plan.students):
            demo = HEAD_TEACHER if first and (grade, number) == (3, 1) else None
            plan.classes.append(_ClassPlan(grade, number, size, generator.account(role=Role.TEACHER, demo=demo)))
        subjects = list(KINDERGARTEN_SUBJECTS if plan.kind == School.Kind.KINDERGARTEN else SUBJECTS)
        rng.shuffle(subjects)
        # A class has one teacher of a subject: a subject teacher takes classes nobody teaches it yet.
        untaught = {subject: list(range(len(plan.classes))) for subject in subjects}
        for position in range(max(1, math.ceil(len(plan.classes) / 3))):
            if first and position == 0:
                # The demo teacher teaches the demo head teacher's class and a class of the next grade,
                # so that the two see some of the same students.
                teacher, subject = generator.account(role=Role.TEACHER, demo=TEACHER), "数学"
                taught = [i for i, c in enumerate(plan.classes) if (c.grade, c.number) in {(3, 1), (4, 1)}]
            else:
                subject = subjects[position % len(subjects)]
                if not untaught[subject]:
                    continue
                teacher = generator.account(role=Role.TEACHER)
                taught = rng.sample(untaught[subject], min(len(untaught[subject]), rng.randint(2, 4)))
            untaught[subject] = [i for i in untaught[subject] if i not in taught]
            plan.teaching.append((teacher, subject, [plan.classes[i] for i in sorted(taught)]))


# --- writing ----------------------------------------------------------------------------------


def demo_county_build(
    *,
    schools: int = DEFAULT_SCHOOLS,
    students_per_school: int = DEFAULT_STUDENTS_PER_SCHOOL,
    seed: int = DEFAULT_SEED,
) -> DemoCountySummary:
    """Build the demo county, in one transaction, into a database without schools.

    A school year containing today; the campaign of the year with its five phases, today inside
    one of them; three zones; ``schools`` schools of mixed kinds, each with classes for its grades,
    a head teacher for every class, subject teachers, an admin and ``students_per_school`` students
    with a guardian and their categories; a zone admin per zone, three inspectors with their
    assigned schools and a bureau admin. Every account has the password ``demo12345``; the six demo
    accounts have fixed usernames (``DEMO_ACCOUNTS``), the others are mobile numbers.
    """
    if schools < 1:
        raise DemoCountyError("学校数至少为 1。")
    if students_per_school < 0:
        raise DemoCountyError("每校学生数不能为负数。")
    started = time.monotonic()
    today = timezone.localdate()
    with transaction.atomic():
        if School.objects.exists():
            raise DemoCountyError("数据库中已有学校：演示县只能建在没有学校的数据库中。")
        taken = set(User.objects.values_list("username", flat=True))
        if clash := sorted(taken & DEMO_USERNAMES):
            raise DemoCountyError(f"账号 {'、'.join(clash)} 已存在，无法创建同名的演示账号。")
        # Hashing is deliberately slow; one hash serves every seeded account.
        generator = _Generator(seed=seed, taken_usernames=taken, password=make_password(DEMO_PASSWORD))
        school_year = _calendar_create(today=today)
        plans = _school_plans(generator=generator, schools=schools, students_per_school=students_per_school)
        _school_staff_plans(generator=generator, plans=plans)
        staff = _organisation_create(generator=generator, plans=plans, school_year=school_year)
        with indexes_built_at_end([Student, Guardian, StudentCategory]):
            students = _students_create(generator=generator, plans=plans, school_year=school_year)
    return DemoCountySummary(
        zones=len(ZONES),
        schools=len(plans),
        classes=sum(len(plan.classes) for plan in plans),
        staff=staff,
        students=students,
        seconds=time.monotonic() - started,
    )


def _calendar_create(*, today: datetime.date) -> SchoolYear:
    """The school year containing today, and the campaign of the year with its phases. A school year
    or campaign the bureau already set up is kept as it is."""
    name, start, end = school_year_bounds(today=today)
    school_year = SchoolYear.objects.filter(name=name).first()
    if school_year is None:
        school_year = SchoolYear(name=name, start=start, end=end)
        school_year.full_clean()
        school_year.save()
    year, phases = campaign_calendar(today=today)
    if Campaign.objects.filter(year=year).exists():
        return school_year
    revisits = next(start for kind, start, _ in phases if kind == Phase.Kind.REVISIT)
    # The revisits are what the campaign's school year counts (at least two in-home visits a year).
    linked = SchoolYear.objects.filter(start__lte=revisits, end__gte=revisits).first() or school_year
    campaign = Campaign(year=year, name=f"{year}年“万名教师大家访”活动", school_year=linked)
    campaign.full_clean()
    campaign.save()
    for kind, start, end in phases:
        phase = Phase(campaign=campaign, kind=kind, start=start, end=end)
        phase.full_clean()
        phase.save()
    return school_year


def _organisation_create(*, generator: _Generator, plans: list[_SchoolPlan], school_year: SchoolYear) -> int:
    """Zones, schools, accounts, classes and assignments; returns the number of accounts."""
    zones = [Zone(code=code, name=name) for code, name, _ in ZONES]
    rows_write(Zone, zones)
    for plan in plans:
        address = (
            f"{COUNTY}{plan.town}{plan.village}村"
            if plan.village and plan.town not in URBAN_TOWNS
            else generator.street_address(plan.town)
        )
        plan.row = School(
            zone=zones[plan.zone],
            name=plan.name,
            code=f"{AREA_CODE}{plan.index + 1:04d}",
            kind=plan.kind,
            address=address,
            contact_name=plan.admin.real_name,
            contact_phone=plan.admin.phone,
        )
    rows_write(School, [plan.row for plan in plans])

    zone_admins = []
    for position, zone in enumerate(zones):
        admin = generator.account(role=Role.ZONE_ADMIN, demo=ZONE_ADMIN if position == 0 else None)
        admin.zone = zone
        zone_admins.append(admin)
    inspectors = [generator.account(role=Role.INSPECTOR, demo=INSPECTOR if i == 0 else None) for i in range(3)]
    bureau = generator.account(role=Role.BUREAU_ADMIN, demo=BUREAU)
    bureau.is_staff = bureau.is_superuser = True
    accounts = [*zone_admins, *inspectors, bureau]
    for plan in plans:
        for user in plan.staff:
            user.school = plan.row
            accounts.append(user)
    rows_write(User, accounts)

    for plan in plans:
        for class_plan in plan.classes:
            class_plan.row = SchoolClass(
                school=plan.row,
                school_year=school_year,
                grade=class_plan.grade,
                number=class_plan.number,
                head_teacher=class_plan.head,
            )
    rows_write(SchoolClass, [c.row for plan in plans for c in plan.classes])
    rows_write(
        TeachingAssignment,
        [
            TeachingAssignment(teacher=teacher, school_class=class_plan.row, subject=subject)
            for plan in plans
            for teacher, subject, taught in plan.teaching
            for class_plan in taught
        ],
    )
    # Each inspector looks after two or three schools (包联学校), the demo inspector 城关第一小学 first.
    assigned = ((0, 1), (2, 3, 4), (5, 6))
    rows_write(
        InspectorAssignment,
        [
            InspectorAssignment(inspector=inspector, school=plans[index].row)
            for inspector, indexes in zip(inspectors, assigned, strict=True)
            for index in dict.fromkeys(i % len(plans) for i in indexes)
        ],
    )
    return len(accounts)


STUDENT_COLUMNS = (
    "school_id",
    "school_class_id",
    "name",
    "gender",
    "student_number",
    "id_number",
    "birth_date",
    "address",
    "disability_type",
    "public_id",
)
GUARDIAN_COLUMNS = ("student_id", "name", "relation", "phone")
CATEGORY_COLUMNS = ("student_id", "category", "start", "source", "note")


def _students_create(*, generator: _Generator, plans: list[_SchoolPlan], school_year: SchoolYear) -> int:
    """Every school's students with a guardian and their categories, written a batch at a time as
    tuples (``values_write``) so that memory stays flat however large the county."""
    batch: list[tuple[tuple, tuple, list[tuple]]] = []

    def flush() -> None:
        keys = values_write(Student, STUDENT_COLUMNS, [student for student, _, _ in batch])
        values_write(
            Guardian, GUARDIAN_COLUMNS, [(key, *guardian) for key, (_, guardian, _) in zip(keys, batch, strict=True)]
        )
        values_write(
            StudentCategory,
            CATEGORY_COLUMNS,
            [(key, *category) for key, (_, _, categories) in zip(keys, batch, strict=True) for category in categories],
        )
        batch.clear()

    count = 0
    for plan in plans:
        for class_plan in plan.classes:
            # The demo head teacher's class always has an orphan and a child without carers, so that
            # the daily and weekly care logs (每日一问, 每周一见) have someone to show.
            showcase = plan.index == 0 and class_plan.head.username == HEAD_TEACHER.username
            for position in range(class_plan.size):
                care = (Category.ORPHAN, Category.UNSUPPORTED)[position] if showcase and position < 2 else None
                batch.append(
                    _student_rows(
                        generator=generator, plan=plan, class_plan=class_plan, school_year=school_year, care=care
                    )
                )
                count += 1
                if len(batch) >= BATCH_SIZE:
                    flush()
    flush()
    return count


def _student_rows(
    *,
    generator: _Generator,
    plan: _SchoolPlan,
    class_plan: _ClassPlan,
    school_year: SchoolYear,
    care: str | None,
) -> tuple[tuple, tuple, list[tuple]]:
    """One student (a row of ``STUDENT_COLUMNS``), a guardian and categories (rows of
    ``GUARDIAN_COLUMNS`` and ``CATEGORY_COLUMNS`` without the student's id, not known yet);
    ``care`` forces the orphan or unsupported category."""
    rng = generator.rng
    male = generator.chance(0.5)
    gender = Student.Gender.MALE if male else Student.Gender.FEMALE
    surname = generator.surname()
    # Children who are six by August 31 start the first grade: a grade is one year of birth dates.
    first_year = school_year.start.year
    earliest = datetime.date(first_year - class_plan.grade - 6, 9, 1)
    days = (datetime.date(first_year - class_plan.grade - 5, 9, 1) - earliest).days
    id_number, born = generator.id_number(male=male, earliest=earliest, days=days)
    found = _categories_drawn(generator=generator, kindergarten=plan.kind == School.Kind.KINDERGARTEN, care=care)
    student = (
        plan.row.pk,
        class_plan.row.pk,
        surname + generator.child_given_name(gender),
        gender,
        f"G{id_number}",
        id_number,
        born,
        generator.home_address(town=plan.town, village=plan.village),
        rng.choice(DISABILITY_TYPES) if Category.DISABILITY in found else "",
        generator.public_id(),
    )

    note = rng.choice(LEFT_BEHIND_NOTES) if Category.LEFT_BEHIND in found else ""
    # Children without parents at hand live with their grandparents; others mostly with a parent.
    if found & {Category.ORPHAN, Category.UNSUPPORTED} or (note and note != "单亲家庭" and generator.chance(0.8)):
        relation = rng.choice(("祖父", "祖母"))
    else:
        roll = rng.random()
        relation = "父亲" if roll < 0.45 else "母亲" if roll < 0.9 else rng.choice(("祖父", "祖母"))
    paternal = relation in ("父亲", "祖父")
    guardian = (
        generator.adult_name(male=paternal, surname=surname if paternal else None, elder=relation[0] == "祖"),
        relation,
        generator.mobile(),
    )
    categories = [
        (
            category,
            school_year.start,
            StudentCategory.Source.ROSTER if category in ROSTER_CATEGORIES else StudentCategory.Source.MANUAL,
            note if category == Category.LEFT_BEHIND else "",
        )
        for category in sorted(found)
    ]
    return student, guardian, categories


def _categories_drawn(*, generator: _Generator, kindergarten: bool, care: str | None) -> set[str]:
    """A student's categories at the county's shares. Orphans, children without carers, left-behind
    and migrant children exclude one another; the other categories are drawn independently."""
    rng = generator.rng
    family, care_roll = rng.random(), rng.random()
    if care is None and care_roll < ORPHAN_SHARE + UNSUPPORTED_SHARE:
        care = Category.ORPHAN if care_roll < ORPHAN_SHARE else Category.UNSUPPORTED
    found = set()
    if care:
        found.add(care)
    elif family < LEFT_BEHIND_SHARE:
        found.add(Category.LEFT_BEHIND)
    elif family < LEFT_BEHIND_SHARE + MIGRANT_SHARE:
        found.add(Category.MIGRANT)
    for category, share in INDEPENDENT_SHARES:
        roll = rng.random()  # drawn even when skipped, so that one student's draws never shift the next's
        if kindergarten and category in NOT_IN_KINDERGARTEN:
            continue
        if care and category == Category.ECONOMIC_HARDSHIP:
            share = 0.6  # a child without carers is most often a poor one
        if roll < share:
            found.add(category)
    return found


# --- resetting and reading ------------------------------------------------------------------


def demo_county_reset() -> None:
    """Delete the county: audit log, import jobs, students with their guardians and categories,
    classes, campaigns, school years, accounts, schools and zones, in one transaction.

    Only a demo database may be reset: one with no schools, or with the demo ``bureau`` account.
    Superusers created by hand outside any school or zone are kept, so the installer keeps a way in.
    """
    with transaction.atomic():
        if (
            School.objects.exists()
            and not User.objects.filter(username=BUREAU.username, role=Role.BUREAU_ADMIN).exists()
        ):
            raise DemoCountyError("数据库中的学校不是演示数据（没有演示账号 bureau），不能清空。")
        files = [job.file_path for job in ImportJob.objects.only("public_id")]
        # What points at the county goes first. A model nothing points to (the audit log, import
        # jobs, guardians, categories) goes with one statement, however many rows it has.
        AuditEvent._base_manager.all().delete()  # the audit log refuses delete(); a demo reset bypasses it
        ImportJob.objects.all().delete()
        for model in _downstream_models():
            model._base_manager.all().delete()
        StudentCategory.objects.all().delete()
        Guardian.objects.all().delete()
        # A student has related rows, so Django loads students before deleting them: one school at a
        # time keeps that to a school's worth however large the county.
        for school_id in School.objects.values_list("pk", flat=True):
            Student.objects.filter(school_id=school_id).delete()
        TeachingAssignment.objects.all().delete()
        InspectorAssignment.objects.all().delete()
        SchoolClass.objects.all().delete()
        Campaign.objects.all().delete()
        SchoolYear.objects.all().delete()
        User.objects.exclude(username__in=_kept_usernames()).delete()
        School.objects.all().delete()
        Zone.objects.all().delete()
        transaction.on_commit(lambda: _files_delete(files))


# The apps that hold the county itself; the apps to their right (visits, ledgers) hang off it.
COUNTY_APPS = frozenset({"schools", "students"})


def _downstream_models() -> list[type[models.Model]]:
    """The models of other apps that point at the county, directly or through one another, ordered
    so that each comes before any model it protects from deletion (PROTECT, RESTRICT).

    Found through the app registry, so that this app need not import the apps to its right and a
    model they add later is reset too; rows that merely point at a model (CASCADE, SET_NULL) are
    left to Django's collector.
    """
    found: set[type[models.Model]] = set()
    candidates = [
        model
        for model in django_apps.get_models()
        if model._meta.app_label not in COUNTY_APPS and not model.__module__.startswith("django.")
    ]
    growing = True
    while growing:
        growing = False
        for model in candidates:
            if model not in found and any(
                related._meta.app_label in COUNTY_APPS or related in found for related, _ in _relations(model)
            ):
                found.add(model)
                growing = True
    # TopologicalSorter takes each node's predecessors: a protected model waits for its protectors.
    graph: dict[type[models.Model], set[type[models.Model]]] = {model: set() for model in found}
    for model in found:
        for related, on_delete in _relations(model):
            if related in found and related is not model and on_delete in (models.PROTECT, models.RESTRICT):
                graph[related].add(model)
    return list(graphlib.TopologicalSorter(graph).static_order())


def _relations(model: type[models.Model]) -> list[tuple[type[models.Model], object]]:
    """(related model, on_delete) of a model's foreign keys and many-to-many fields."""
    return [
        (model_field.related_model, getattr(model_field.remote_field, "on_delete", None))
        for model_field in [*model._meta.fields, *model._meta.many_to_many]
        if model_field.is_relation and model_field.related_model is not None
    ]


def _kept_usernames() -> list[str]:
    return list(
        User.objects.filter(is_superuser=True, school__isnull=True, zone__isnull=True)
        .exclude(username__in=DEMO_USERNAMES)
        .values_list("username", flat=True)
    )


def _files_delete(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class DemoAccountRow:
    role_label: str
    username: str
    password: str
    real_name: str
    place: str


def demo_account_rows() -> list[DemoAccountRow]:
    """The demo accounts in the database, in ``DEMO_ACCOUNTS`` order, with where each one works."""
    users = {
        user.username: user
        for user in User.objects.filter(username__in=DEMO_USERNAMES).select_related("school", "zone")
    }
    inspected: dict[int, list[School]] = {}
    for assignment in InspectorAssignment.objects.filter(inspector__in=users.values()).select_related("school"):
        inspected.setdefault(assignment.inspector_id, []).append(assignment.school)
    classes: dict[int, list[SchoolClass]] = {}
    for school_class in SchoolClass.objects.filter(head_teacher__in=users.values()):
        classes.setdefault(school_class.head_teacher_id, []).append(school_class)
    for assignment in TeachingAssignment.objects.filter(teacher__in=users.values()).select_related("school_class"):
        classes.setdefault(assignment.teacher_id, []).append(assignment.school_class)

    rows = []
    for account in DEMO_ACCOUNTS:
        user = users.get(account.username)
        if user is None:
            continue
        if user.role == Role.BUREAU_ADMIN:
            place = "全县"
        elif user.role == Role.INSPECTOR:
            schools = sorted(inspected.get(user.pk, []), key=lambda school: school.code)
            place = "包联：" + "、".join(school.name for school in schools)
        elif user.role == Role.ZONE_ADMIN:
            place = str(user.zone or "")
        else:
            taught = sorted(classes.get(user.pk, []), key=lambda c: (c.grade, c.number))
            place = " ".join(filter(None, [str(user.school or ""), "、".join(c.name for c in taught)]))
        rows.append(DemoAccountRow(account.role_label, user.username, DEMO_PASSWORD, user.real_name, place))
    return rows


def demo_county_counts() -> dict[str, int]:
    """How many zones, schools, classes, accounts and students the database holds."""
    return {
        "zones": Zone.objects.count(),
        "schools": School.objects.count(),
        "classes": SchoolClass.objects.count(),
        "staff": User.objects.count(),
        "students": Student.objects.count(),
    }
