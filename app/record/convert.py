"""Convert a stored or typed value to a field type, the way people write it in Chinese offices.

Used where data changes shape: a type change in a migration (every existing value must convert,
or the step is refused) and, later, spreadsheet imports. ``convert`` raises ValueError with a
short reason; it never guesses (1.5 is not an integer, 2026-02-30 is not a date).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from app.messages import msg
from app.spec.model import EMAIL_PATTERN, NUMERIC_TYPES, PHONE_PATTERN

TRUE = {"yes", "y", "true", "1", "是", "√", "✓", "t", "on", "对"}
FALSE = {"no", "n", "false", "0", "否", "×", "f", "off", "错"}
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y%m%d")
DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%dT%H:%M:%S",
                    "%Y-%m-%dT%H:%M", "%Y年%m月%d日 %H:%M", "%Y年%m月%d日 %H时%M分")


def _number(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("a yes/no value is not a number")
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    text = str(value).strip().replace(",", "").replace(",", "").replace("¥", "").replace("￥", "")
    if text.endswith("万"):
        return _number(text[:-1]) * 10000
    try:
        n = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"'{value}' is not a number") from None
    if not n.is_finite():  # NaN, Infinity: no column holds them
        raise ValueError(f"'{value}' is not a number")
    return n


# what the columns hold (Integer; Numeric(18, 4) and Numeric(18, 2)): a larger value is a cell's
# mistake, refused where it is typed, not a database error that stops the whole save or import
INTEGER_LIMIT = 2_147_483_647
DIGITS_BEFORE_POINT = {"decimal": 14, "money": 16}


def _in_range(n: Decimal, ftype: str, value: Any) -> None:
    limit = Decimal(INTEGER_LIMIT) if ftype == "integer" else Decimal(10) ** DIGITS_BEFORE_POINT[ftype]
    if abs(n) > limit or (ftype != "integer" and abs(n) == limit):
        raise ValueError(msg("'%(value)s' 超出此字段能存的范围", value=value))


def convert(value: Any, ftype: str, length: int | None = None, allowed: tuple[str, ...] = ()) -> Any:
    """``value`` as the Python value of a ``ftype`` column; None stays None; blank text is None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if ftype in ("integer", "link", "user"):
        n = _number(value)
        if n != n.to_integral_value():
            raise ValueError(f"'{value}' is not a whole number")
        return int(n)
    if ftype in ("decimal", "money"):
        n = _number(value)
        try:
            cents = n.quantize(Decimal("0.01"))
        except InvalidOperation:  # more digits than any column holds
            raise ValueError(msg("'%(value)s' 超出此字段能存的范围", value=value)) from None
        if ftype == "money" and n != cents:
            raise ValueError(f"'{value}' has more than 2 decimals")
        return n
    if ftype == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise ValueError(f"'{value}' is not yes/no")
    if ftype == "date":
        if isinstance(value, dt.datetime):
            if value.time() != dt.time():
                raise ValueError(f"'{value}' has a time of day")
            return value.date()
        if isinstance(value, dt.date):
            return value
        text = re.sub(r"\s+", " ", str(value).strip()).removesuffix(" 00:00:00")
        return _strptime(text, DATE_FORMATS, "a date").date()
    if ftype == "datetime":
        if isinstance(value, dt.datetime):
            return value
        if isinstance(value, dt.date):
            return dt.datetime.combine(value, dt.time())
        return _strptime(re.sub(r"\s+", " ", str(value).strip()), DATETIME_FORMATS + DATE_FORMATS, "a date and time")
    text = value if isinstance(value, str) else _text(value)
    if ftype == "choice" and allowed and text not in allowed:
        raise ValueError(f"'{text}' is not one of the choices")
    if length is not None and len(text) > length:
        raise ValueError(f"longer than {length} characters")
    return text


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() else str(value)
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _strptime(text: str, formats: tuple[str, ...], what: str) -> dt.datetime:
    for fmt in formats:
        if fmt == "%Y%m%d" and not re.fullmatch(r"\d{8}", text):  # 202611 or 2026111 would be guessed
            continue
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"'{text}' is not {what}")


def check_field(f: Any, value: Any) -> None:
    """The checks a field declares (min/max, length, pattern, e-mail, phone) on a converted value,
    as the forms and the API apply them; raises ValueError saying which one failed."""
    if value is None:
        return
    if f.type in NUMERIC_TYPES:
        _in_range(Decimal(value), f.type, value)
        if f.min is not None and value < Decimal(str(f.min)):
            raise ValueError(msg("%(value)s 小于最小值 %(min)s", value=value, min=f"{f.min:g}"))
        if f.max is not None and value > Decimal(str(f.max)):
            raise ValueError(msg("%(value)s 大于最大值 %(max)s", value=value, max=f"{f.max:g}"))
    if f.type in ("string", "text", "email", "phone") and isinstance(value, str):
        if f.min is not None and len(value) < int(f.min):
            raise ValueError(msg("至少 %(n)s 个字", n=int(f.min)))
        if f.max is not None and len(value) > int(f.max):
            raise ValueError(msg("最多 %(n)s 个字", n=int(f.max)))
        if f.pattern and not re.match(f.pattern, value):
            raise ValueError(msg("'%(value)s' 格式不正确", value=value))
        if f.type == "email" and not re.match(EMAIL_PATTERN, value):
            raise ValueError(msg("'%(value)s' 不是有效的邮箱", value=value))
        if f.type == "phone" and not re.match(PHONE_PATTERN, value):
            raise ValueError(msg("'%(value)s' 不是有效的电话号码", value=value))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def same_value(a: Any, b: Any) -> bool:
    """Whether two values of a field are the same as a person sees them, whatever the path that
    brought them: a record and its id, blank text and none, an unticked box and none, text whose
    line breaks came back as ``\\r\\n`` from a browser or with spaces around it, times within a
    second of each other (a form shows whole seconds, a spreadsheet rounds to the millisecond),
    numbers of equal value. A save or an import that brings the same value back is not a change."""
    a, b = (v.id if hasattr(v, "__table__") else v for v in (a, b))
    if _blank(a) or _blank(b):
        return (_blank(a) or a is False) and (_blank(b) or b is False)
    if isinstance(a, str) and isinstance(b, str):
        return _plain_text(a) == _plain_text(b)
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return abs(a.replace(tzinfo=None) - b.replace(tzinfo=None)) < dt.timedelta(seconds=1)
    if all(isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in (a, b)):
        return Decimal(str(a)) == Decimal(str(b))
    return bool(a == b)


def _plain_text(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()
