"""Numbers typed into free text are masked like stored ones, whatever their writing (DESIGN §8,
issue 14): property-based over generated numbers, groupings, separators and digit widths, plus the
forms reported by the probe and the ordinary numbers that must stay as written."""

import datetime
import os

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from schools.privacy import mask_id_number, mask_phone, redact_contacts

PROVINCES = ["11", "13", "31", "37", "41", "44", "50", "65", "82"]
SEPARATORS = [" ", "-", ".", "/", " - ", "  ", "－", "．", "／", "\u3000", "。", "—", "·", "_", "--", "\t", "‐"]
# Text around a number: words and punctuation without digits or Latin letters.
AROUND = st.text(alphabet="家长电话母亲父亲爷爷奶奶联系方式号码：，；！在家 ", max_size=8)


def _id_check_character(first17: str) -> str:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]


def digits(count: int):
    return st.text(alphabet="0123456789", min_size=count, max_size=count)


mobiles = st.builds(lambda second, rest: "1" + second + rest, st.sampled_from("3456789"), digits(9))
landlines = st.builds(
    lambda area, first, rest: area + first + rest,
    st.one_of(
        st.just("010"),
        st.builds(lambda d: "02" + d, digits(1)),
        st.builds(lambda a, b: "0" + a + b, st.sampled_from("3456789"), digits(2)),
    ),
    st.sampled_from("23456789"),
    st.one_of(digits(6), digits(7)),
)
birthdays = st.dates(min_value=datetime.date(1930, 1, 1), max_value=datetime.date(2025, 12, 31))
ids18 = st.builds(
    lambda province, area, born, serial: (lambda first17: first17 + _id_check_character(first17))(
        f"{province}{area}{born:%Y%m%d}{serial}"
    ),
    st.sampled_from(PROVINCES),
    digits(4),
    birthdays,
    digits(3),
)
ids15 = st.builds(
    lambda province, area, born, serial: f"{province}{area}{born:%y%m%d}{serial}",
    st.sampled_from(PROVINCES),
    digits(4),
    st.dates(min_value=datetime.date(1930, 1, 1), max_value=datetime.date(1999, 12, 31)),
    digits(3),
)


@st.composite
def written(draw, number: str) -> str:
    """``number`` as a person might type it: cut into groups anywhere, the groups joined by any
    separator (mixed), each digit ASCII or full-width at random."""
    cuts = sorted(draw(st.sets(st.integers(1, len(number) - 1), max_size=5)))
    groups = [number[a:b] for a, b in zip([0, *cuts], [*cuts, len(number)], strict=True)]
    text = groups[0]
    for group in groups[1:]:
        text += draw(st.sampled_from(SEPARATORS)) + group
    wide = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(
        chr(0xFF10 + int(char)) if char.isdigit() and is_wide else ("Ｘ" if char == "X" and is_wide else char)
        for char, is_wide in zip(text, wide, strict=True)
    )


@st.composite
def typed_mobile(draw) -> tuple[str, str]:
    number = draw(mobiles)
    prefix = draw(st.sampled_from(["", "+86 ", "+86-", "86 ", "0086 ", "＋８６ ", "(+86)"]))
    return prefix + draw(written(number)), mask_phone(number)


@st.composite
def typed_landline(draw) -> tuple[str, str]:
    number = draw(landlines)
    return draw(written(number)), mask_phone(number)


@st.composite
def typed_id(draw) -> tuple[str, str]:
    number = draw(st.one_of(ids18, ids15))
    return draw(written(number)), mask_id_number(number)


FAST = settings(
    max_examples=int(os.environ.get("REDACTION_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FAST
@given(before=AROUND, typed=st.one_of(typed_mobile(), typed_landline(), typed_id()), after=AROUND)
@example(before="电话 ", typed=("139.0000.3333", "139****3333"), after="")
@example(before="", typed=("１３９００００４４４４", "139****4444"), after="")
@example(before="身份证", typed=("110105 19491231 002X", "110105********002X"), after="。")
@example(before="身份证", typed=("110105-19491231-002X", "110105********002X"), after="")
@example(before="", typed=("+86-13900001111", "139****1111"), after="")
def test_a_typed_number_is_masked_as_a_stored_one_whatever_its_writing(before, typed, after):
    text, masked = typed
    assert redact_contacts(before + text + after) == before + masked + after


@FAST
@given(
    first=st.one_of(typed_mobile(), typed_landline(), typed_id()),
    between=st.sampled_from(["，", "、", "；", " 或 ", "\n", "，另 "]),
    second=st.one_of(typed_mobile(), typed_landline(), typed_id()),
)
@example(first=("13000000000", "130****0000"), between="，", second=("0 2020-1-1 000", "020***1000"))
@example(first=("0 2020-1-1 000", "020***1000"), between="、", second=("110105 1949-12-31 002X", "110105********002X"))
def test_two_numbers_in_one_text_are_both_masked(first, between, second):
    assert redact_contacts(first[0] + between + second[0]) == first[1] + between + second[1]


@st.composite
def dates_written(draw) -> str:
    day = draw(st.dates(min_value=datetime.date(1990, 1, 1), max_value=datetime.date(2035, 12, 31)))
    separator = draw(st.sampled_from(["-", "/", ".", "．", "－"]))
    padded = draw(st.booleans())
    month, dom = (f"{day:%m}", f"{day:%d}") if padded else (str(day.month), str(day.day))
    text = separator.join([str(day.year), month, dom])
    if draw(st.booleans()):
        text += draw(st.sampled_from([" ", "-"])) + f"{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"
    return text


amounts = st.one_of(
    st.integers(0, 99_999_999).map(str),
    st.integers(0, 99_999_999).map(lambda n: f"{n:,}"),
    st.decimals(min_value=0, max_value=9_999_999, places=2, allow_nan=False).map(str),
    st.integers(1, 60).map(lambda n: f"{n}人"),
)


@FAST
@given(
    parts=st.lists(st.one_of(dates_written(), amounts), min_size=1, max_size=4),
    joiner=st.sampled_from(["，", "；", " 至 ", "、", " 元，"]),
)
def test_dates_amounts_and_counts_stay_as_written(parts, joiner):
    # Not joined by a bare space: 「1300 0000 1000」 is how a mobile number is written, and is masked.
    text = joiner.join(parts)
    assert redact_contacts(text) == text


@FAST
@given(st.text(max_size=60))
def test_redaction_is_idempotent_and_never_adds_digits(text):
    once = redact_contacts(text)
    assert redact_contacts(once) == once
    assert sum(char.isdigit() for char in once) <= sum(char.isdigit() for char in text) + 1


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("家长电话 139 0000 1111", "家长电话 139****1111"),
        ("139.0000.3333", "139****3333"),
        ("１３９００００４４４４", "139****4444"),
        ("１３９－００００－４４４４", "139****4444"),
        ("+86-139-0000-1111，0086 13900001111", "139****1111，139****1111"),
        ("110105 19491231 002X", "110105********002X"),
        ("110105-19491231-002X", "110105********002X"),
        ("110105/19491231/002x", "110105********002X"),
        ("（0371）6688 0011", "037*****0011"),
        ("(010) 6688-0011", "010****0011"),
        ("+86 371 6688 0011", "037*****0011"),
        ("电话13912345678X", "电话139****5678X"),
        ("学籍号 G110105201501011234", "学籍号 G110105********1234"),
        ("2025-06-30 13912345678", "2025-06-30 139****5678"),
        ("2025年6月30日上午10:30，3人在家，补助 1,500.00 元", "2025年6月30日上午10:30，3人在家，补助 1,500.00 元"),
        ("第 2 次家访，2025.06.30—2025.07.05", "第 2 次家访，2025.06.30—2025.07.05"),
        ("邮编 450000，门牌 12-3-401", "邮编 450000，门牌 12-3-401"),
    ],
)
def test_forms_reported_by_the_probe(text, shown):
    assert redact_contacts(text) == shown
