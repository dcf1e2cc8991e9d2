"""Who sees a student whole, and the masking of identifiers for everyone else (DESIGN §8)."""

import datetime
import re
import unicodedata
from collections.abc import Iterator

from schools.models import SCHOOL_ROLES


def works_with_students(user) -> bool:
    """Teachers and school admins work with the students their scope holds and see them whole; the
    county's roles (zone admin, inspector, bureau admin) read figures and masked identifiers: no
    contact details, no sensitive category, no notes on a home and no photos of it."""
    return user.role in SCHOOL_ROLES


SMALL_COUNT = "<3"


def small_count(count: int, *, exact: bool) -> int | str:
    """A count of a sensitive category's students in a class, as the reader may see it: 1 or 2
    would point at a child, so readers who do not work with the students (``exact`` False) see
    「<3」; 0 and 3 or more, and every figure for the school's own staff, as they are (issue 14,
    DESIGN §8)."""
    return SMALL_COUNT if not exact and 1 <= count <= 2 else count


def mask_phone(phone: str) -> str:
    """13812345678 → 138****5678; a landline keeps its area code and last four digits."""
    if not phone:
        return ""
    if len(phone) <= 7:
        return "*" * len(phone)
    return f"{phone[:3]}{'*' * (len(phone) - 7)}{phone[-4:]}"


def mask_id_number(id_number: str) -> str:
    """11010519491231002X → 110105********002X: the area stays, the birth date does not."""
    if not id_number:
        return ""
    if len(id_number) <= 10:
        return "*" * len(id_number)
    return f"{id_number[:6]}{'*' * (len(id_number) - 10)}{id_number[-4:]}"


# Free text (接待家长, notes, the family's suggestions) may hold a number a teacher typed in, in any
# writing: 139 0000 1111, 139.0000.3333, １３９００００４４４４, +86-139…, 110105 19491231 002X,
# (0371) 6688-0011. The text is first read through a skeleton of the same length in which every
# character that NFKC folds to one ASCII character is replaced by it (full-width digits, letters
# and punctuation, the ideographic space) and the usual Chinese separators by "." or "-"; numbers
# are then found as chains of digit groups joined by short separators, and each chain is split,
# longest first, into the numbers it holds.
_SEPARATORS = frozenset(" \t.-/\\_()~")
_MAX_SEPARATOR = 4  # characters between two groups of one number: " - ", ") ", "--"
_CHINESE_SEPARATORS = {
    "。": ".",
    "·": ".",
    "・": ".",
    "—": "-",
    "–": "-",
    "‐": "-",
    "‑": "-",
    "‒": "-",
    "−": "-",
    "～": "~",
}
# A run of digits, with an ID number's check character X glued on or standing alone after a separator.
_GROUP = re.compile(r"[0-9]+(?:[Xx](?![0-9]))?|(?<![A-Za-z])[Xx](?![0-9A-Za-z])")
# A date written with one separator (2025-06-30, 2025.6.30) is no part of a number next to it:
# 「2025.06.30—2025.07.05」 must not read as a landline 0630-20250705.
_DATE = re.compile(r"(?<![0-9])(?:19|20)[0-9]{2}([-./])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12][0-9]|3[01])(?![0-9])")
_ANY_DIGIT = re.compile(r"[\d\u2460-\u249b\u24ea-\u24ff\u2776-\u2793]")
# Province codes, the first two digits of an ID number (GB/T 2260).
_PROVINCES = frozenset(
    {*range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47), *range(50, 55), *range(61, 66), 71, 81, 82, 83, 91}
)
_LONGEST_NUMBER = 18 + 4  # an ID number; "0086" + a mobile number is 15


class _Skeleton(dict):
    """``str.translate`` table: one character for one, computed once per code point."""

    def __missing__(self, code_point: int) -> str:
        char = chr(code_point)
        folded = _CHINESE_SEPARATORS.get(char)
        if folded is None:
            folded = unicodedata.normalize("NFKC", char)
            if len(folded) != 1 or not folded.isascii():
                folded = " " if char.isspace() and char not in "\n\r\u2028\u2029" else char
        self[code_point] = folded
        return folded


_SKELETON = _Skeleton()


def redact_contacts(text: str) -> str:
    """Mask the phone and ID numbers written anywhere in ``text`` as stored ones are masked, for
    readers and exports that show masked identifiers only (DESIGN §8).

    Recognised, whatever the separators between digits (spaces, dots, hyphens, slashes, brackets,
    full-width or Chinese punctuation, mixed) and whatever the digit width (ASCII, full-width,
    circled): mainland mobile numbers (1[3-9] + 9 digits, with or without +86/86/0086) →
    ``139****5678``; landlines (0 + area code of 2-3 digits + 7-8 digits, or +86 without the 0) →
    ``037*****0011``; ID numbers of 18 characters (last may be X) and old ones of 15 digits →
    ``110105********002X``. A number glued to other digits is not a number of its own; a number
    split into groups must be a plausible one (province code and birth date for ID numbers) so that
    dates (2025-06-30), amounts and counts stay as written.
    """
    if not text or not _ANY_DIGIT.search(text):
        return text or ""
    raw = text.translate(_SKELETON)
    skeleton = _DATE.sub(lambda date: _date_hidden(raw, date), raw)
    pieces, done = [], 0
    for chain in _chains(skeleton):
        for start, end, masked in _numbers_in(chain, skeleton):
            pieces += [text[done:start], masked]
            done = end
    pieces.append(text[done:])
    return "".join(pieces)


def _date_hidden(raw: str, date: re.Match) -> str:
    """A date as ``#``s, so that it joins no number next to it; unless the digit groups chained
    around it are, all together, one phone or ID number that happens to contain a date's shape
    (a landline typed 「0 2020-1-1 000」, an ID number 「110105 1949-12-31 002X」)."""
    for chain in _chains(raw):
        if chain[0].start() <= date.start() and date.end() <= chain[-1].end():
            if _mask_number("".join(group.group().upper() for group in chain), whole=False):
                return date.group()
            break
    return "#" * len(date.group())


def _chains(skeleton: str) -> list[list[re.Match]]:
    """Digit groups, gathered into chains of groups that only short separators part."""
    chains: list[list[re.Match]] = []
    for group in _GROUP.finditer(skeleton):
        if chains:
            last = chains[-1][-1]
            between = skeleton[last.end() : group.start()]
            if (
                not last.group().endswith(("X", "x"))
                and 0 < len(between) <= _MAX_SEPARATOR
                and all(char in _SEPARATORS for char in between)
            ):
                chains[-1].append(group)
                continue
        chains.append([group])
    return chains


def _numbers_in(chain: list[re.Match], skeleton: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, masked) of each number in a chain, left to right, the longest first."""
    i = 0
    while i < len(chain):
        found, digits = None, ""
        for j in range(i, len(chain)):
            digits += chain[j].group().upper()
            if len(digits) > _LONGEST_NUMBER:
                break
            # An X after the digits is an ID number's check character, or only a letter after a phone.
            for candidate, end in ((digits, chain[j].end()), (digits.removesuffix("X"), chain[j].end() - 1)):
                masked = _mask_number(candidate, whole=i == j)
                if masked:
                    found = (j, masked, candidate, end)
                    break
        if found is None:
            i += 1
            continue
        j, masked, digits, end = found
        start = chain[i].start()
        if start and skeleton[start - 1] == "+" and digits.startswith(("86", "0086")):
            start -= 1
        if start and skeleton[start - 1] == "(" and ")" in skeleton[start:end] and "(" not in skeleton[start:end]:
            start -= 1
        yield start, end, masked
        i = j + 1


def _mask_number(digits: str, *, whole: bool) -> str | None:
    """The masked form of ``digits`` if they are a phone or ID number, else None. ``whole``: they
    were written as one run of digits (an 18-digit run is an ID number whatever its date)."""
    if "X" not in digits:
        phone = _mask_phone_number(digits)
        if phone:
            return phone
    if len(digits) in (15, 18) and (whole or _plausible_id(digits)):
        return mask_id_number(digits)
    return None


def _mask_phone_number(digits: str) -> str | None:
    """A mobile or landline number, with or without the country code (86, 0086; a landline after it
    drops its leading 0), masked; else None."""
    candidates = [digits]
    for prefix in ("0086", "86"):
        if digits.startswith(prefix):
            national = digits[len(prefix) :]
            candidates += [national, national if national.startswith("0") else "0" + national]
            break
    for national in candidates:
        if _MOBILE.fullmatch(national) or _LANDLINE.fullmatch(national):
            return mask_phone(national)
    return None


_MOBILE = re.compile(r"1[3-9]\d{9}")
_LANDLINE = re.compile(r"0(?:10|2\d|[3-9]\d{2})[2-9]\d{6,7}")


def _plausible_id(digits: str) -> bool:
    """Province code and birth date of an 18-character or a 15-digit (old, 19YYMMDD) ID number."""
    if int(digits[:2]) not in _PROVINCES:
        return False
    birth = digits[6:14] if len(digits) == 18 else "19" + digits[6:12]
    try:
        born = datetime.date(int(birth[:4]), int(birth[4:6]), int(birth[6:8]))
    except ValueError:
        return False
    return datetime.date(1900, 1, 1) <= born <= datetime.date(2100, 1, 1)
