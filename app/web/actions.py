"""FAB's record actions within the user's row scope.

Flask-AppBuilder loads the records of a bulk action (``…/action_post``, the rows ticked on a list)
and of a one-record action (``…/action/<name>/<pk>``) with ``datamodel.get(pk)``: without the
view's base filters, so a forged post could act on any id, whatever the list showed. Here both
load them through the base filters (the row scope of the entity's screens, whatever an admin
screen adds), and a selection naming an id the user cannot see is answered exactly as one naming
an id nobody has: 404, nothing done. Every view that offers actions takes this mixin first
(``tests/test_security.py`` checks all registered views).
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request
from flask_appbuilder import expose
from flask_appbuilder.const import FLAMSG_ERR_SEC_ACCESS_DENIED

from app.record.convert import INTEGER_LIMIT


class ScopedActions:
    """Mixin for a ``ModelView`` (put it before ``ModelView``): its actions see only the records
    its base filters let the user see."""

    datamodel: Any
    actions: dict[str, Any]
    appbuilder: Any
    class_permission_name: str
    _base_filters: Any

    def _in_scope(self, pks: list[str]) -> list[Any]:
        """The records of ``pks`` as the user may see them; 404 when one is missing or out of sight."""
        if not pks:
            abort(404)
        items = []
        for pk in pks:
            text = str(pk).strip()
            if not text.isdigit() or len(text) > 10 or int(text) > INTEGER_LIMIT:  # no row has it
                abort(404)
            item = self.datamodel.get(int(text), self._base_filters)
            if item is None:
                abort(404)
            items.append(item)
        return items

    def _may(self, name: str) -> bool:
        permission = self.get_action_permission_name(name)  # type: ignore[attr-defined]
        return bool(self.appbuilder.sm.has_access(permission, self.class_permission_name))

    def _denied(self) -> Any:
        flash(str(FLAMSG_ERR_SEC_ACCESS_DENIED), "danger")
        return redirect(".")

    @expose("/action/<string:name>/<pk>", methods=["POST"])
    def action(self, name: str, pk: str) -> Any:
        """One record's action (a POST: CSRF-protected), on a record the user may see."""
        if name not in self.actions:
            abort(404)
        if not self._may(name):
            return self._denied()
        return self.actions[name].func(self._in_scope([pk])[0])

    @expose("/action_post", methods=["POST"])
    def action_post(self) -> Any:
        """The rows ticked on a list (``rowid``), all within the user's scope, or nothing done."""
        name = request.form.get("action", "")
        if name not in self.actions:  # also refused earlier (app.web.errors.known_action)
            abort(400)
        if not self._may(name):
            return self._denied()
        return self.actions[name].func(self._in_scope(request.form.getlist("rowid")))
