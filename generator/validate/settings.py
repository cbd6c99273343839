"""The settings sheet: one row per key (language, time zone, working days and hours, holidays …),
each value checked for what it must be."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from app.spec.model import Settings

from ..problems import did_you_mean, hint, msg
from .context import Context
from .reader import LIST_SEPARATORS

SETTING_KEYS = ("app_name", "language", "timezone", "working_days", "working_hours", "holidays", "extra_working_days", "currency",
                "catch_up_days")
CATCH_UP_DAYS = (1, 3650)
EXTRA_SETTING_KEYS = ("survey_followup_role",)  # read by the runtime from Settings.extra
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES = {name: name[:3] for name in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}


def build_settings(v: Context) -> Settings:
    values: dict[str, Any] = {}
    extra: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for _row, c in v.rows("settings"):
        key = c("key").text
        value = c("value").text
        if not key:
            continue
        if key in seen:  # the last one would win, silently (a second timezone moves every deadline)
            v.p.add(c("key").ref, msg("duplicate", what="设置", what_en="setting", value=key, first=seen[key]),
                    hint("keep_one"))
            continue
        seen[key] = c("key").ref
        if key in EXTRA_SETTING_KEYS:
            extra.append((key, value))
            continue
        if key not in SETTING_KEYS:
            known = SETTING_KEYS + EXTRA_SETTING_KEYS
            v.p.add(c("key").ref, msg("setting_unknown", value=key), did_you_mean(key, known) or hint("one_of", values=", ".join(known)))
            continue
        if key == "language":
            lang = v.r.one_of(c("value"), ("zh", "en"), "setting_value", key=key)
            if lang:
                values["language"] = lang
        elif key == "working_days":
            days, bad = [], False
            for part in re.split(LIST_SEPARATORS, value):
                day = WEEKDAY_NAMES.get(part.lower(), part.lower())
                if day in WEEKDAYS:
                    days.append(day)
                elif part:
                    bad = True
                    v.p.add(
                        c("value").ref,
                        msg("setting_value", key=key, value=part),
                        did_you_mean(day, WEEKDAYS) or hint("one_of", values=",".join(WEEKDAYS)),
                    )
            if not days and not bad:
                v.p.add(c("value").ref, msg("setting_value", key=key, value=value), hint("one_of", values=",".join(WEEKDAYS)))
            elif not bad:
                values["working_days"] = tuple(dict.fromkeys(days))
        elif key == "working_hours":
            spans: list[tuple[str, str]] = []
            for part in re.split(r"[,\uff0c\u3001]+", value):
                m = re.match(r"^\s*(\d{1,2}):([0-5]\d)\s*[-\u2013~\uff5e]\s*(\d{1,2}):([0-5]\d)\s*$", part)
                start, end = (f"{int(m.group(1)):02d}:{m.group(2)}", f"{int(m.group(3)):02d}:{m.group(4)}") if m else ("", "")
                # times of one day (00:00-23:59), in order, each span after the one before
                if not m or end > "23:59" or start >= end or (spans and start < spans[-1][1]):
                    spans = []
                    break
                spans.append((start, end))
            if spans:
                values["working_hours"] = tuple(spans)
            else:
                v.p.add(c("value").ref, msg("setting_value", key=key, value=value), hint("for_example", values="09:00-12:00,13:00-18:00"))
        elif key in ("holidays", "extra_working_days"):
            days = []
            for part in re.split(LIST_SEPARATORS, value):
                if not part:
                    continue
                try:
                    days.append(dt.date.fromisoformat(part).isoformat())
                except ValueError:
                    v.p.add(c("value").ref, msg("setting_value", key=key, value=part), hint("for_example", values="2026-10-01"))
            values[key] = tuple(sorted(set(days)))
        elif key == "catch_up_days":
            low, high = CATCH_UP_DAYS
            if re.fullmatch(r"\s*\d{1,4}\s*", value) and low <= int(value) <= high:
                values[key] = int(value)
            else:
                v.p.add(c("value").ref, msg("setting_value", key=key, value=value), hint("whole_number_between", low=low, high=high))
        elif key == "timezone":
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(value)
                values["timezone"] = value
            except (ZoneInfoNotFoundError, ValueError):
                v.p.add(c("value").ref, msg("setting_value", key=key, value=value), hint("for_example", values="Asia/Shanghai"))
        elif value:
            values[key] = value
    return Settings(**values, extra=tuple(extra))
