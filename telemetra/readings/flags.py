"""``readings.flags`` packs what is known about a reading into one small integer.

bit 0: invalid (outside the sensor's valid range, or carrying an invalid tag)
bits 1-2: review status: 0 pending, 1 validated, 2 archived
"""

from enum import StrEnum

from sqlalchemy import ColumnElement, literal

INVALID = 1
_STATUS_SHIFT = 1
_STATUS_MASK = 0b110


class ReviewStatus(StrEnum):
    pending = "pending"
    validated = "validated"
    archived = "archived"


_STATUS_CODES = {ReviewStatus.pending: 0, ReviewStatus.validated: 1, ReviewStatus.archived: 2}
_STATUS_BY_CODE = {code: status for status, code in _STATUS_CODES.items()}


def pack(valid: bool, status: ReviewStatus = ReviewStatus.pending) -> int:
    return (0 if valid else INVALID) | (_STATUS_CODES[status] << _STATUS_SHIFT)


def is_valid_reading(value: float, tags: list[str] | None, valid_min: float | None,
                     valid_max: float | None, invalid_tags: frozenset[str]) -> bool:
    """A reading is invalid outside its sensor's range or with one of the organization's
    invalid tags (exact, case-sensitive)."""
    return not ((valid_min is not None and value < valid_min)
                or (valid_max is not None and value > valid_max)
                or (tags and not invalid_tags.isdisjoint(tags)))


def is_valid(flags: int) -> bool:
    return not flags & INVALID


# Indexed by the status bits as they sit in flags (the unused code 3 reads as pending).
_STATUS_BY_BITS = tuple(_STATUS_BY_CODE.get(bits >> _STATUS_SHIFT, ReviewStatus.pending)
                        for bits in range(_STATUS_MASK + 1))


def status_of(flags: int) -> ReviewStatus:
    return _STATUS_BY_BITS[flags & _STATUS_MASK]


def with_status(flags: int, status: ReviewStatus) -> int:
    return (flags & ~_STATUS_MASK) | (_STATUS_CODES[status] << _STATUS_SHIFT)


def valid_clause(column) -> ColumnElement[bool]:
    """SQL: the reading is valid."""
    return column.op("&")(literal(INVALID)) == 0


def status_clause(column, status: ReviewStatus) -> ColumnElement[bool]:
    """SQL: the reading has this review status."""
    return column.op("&")(literal(_STATUS_MASK)) == _STATUS_CODES[status] << _STATUS_SHIFT


def set_status_value(column, status: ReviewStatus):
    """SQL: flags with the review status replaced."""
    return column.op("&")(literal(~_STATUS_MASK & 0x7FFF)).op("|")(
        literal(_STATUS_CODES[status] << _STATUS_SHIFT))
