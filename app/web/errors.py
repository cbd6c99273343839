"""Helpful error pages: what happened and where to go, in the person's language, inside the
normal menu — JSON for the REST API. A 500 says nothing was saved (the request's transaction is
rolled back) and never shows a traceback."""

from __future__ import annotations

from typing import Any

import prison
import sqlalchemy as sa
from flask import Flask, current_app, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from app.messages import localized, msg
from app.record import audit
from app.web.dbtuning import is_database_busy, is_query_canceled

PAGES = {
    400: ("请求有误", "请求的参数无法理解,请返回重试。"),
    403: ("没有权限", "您的角色没有这项操作的权限。如需开通,请联系系统管理员。"),
    404: ("页面不存在", "您要找的页面不存在,或记录已被删除,或不在您的查看范围内。"),
    413: ("文件太大", "上传的文件超过了允许的大小,没有保存任何内容。导入的数据请拆分成几个较小的文件;附件请压缩后再上传。"),
    429: ("操作过于频繁", "短时间内的尝试次数过多,已暂时停止。请等一分钟后再试;忘记密码请联系系统管理员。"),
    500: ("系统出错", "处理请求时出错,没有保存任何更改。请稍后重试;如果问题持续,请联系系统管理员。"),
    503: ("查询超时", "这个查询用时太长,已被停止,没有保存任何更改。请缩小筛选范围(例如加上日期或区域条件)后重试;"
                    "如果经常发生,请联系系统管理员。"),
}
BUSY = ("数据库正忙", "数据库正忙于另一项写入(例如一次大的导入),这次没有保存任何更改。请稍等片刻后重试。")
# a confidential record is shown only once its read is on record (app.record.audit.record_read)
READ_BUSY = ("数据库正忙", "数据库正忙于另一项写入(例如一次大的导入)。保密记录的每次查看都要登记,现在无法登记,所以暂不显示。请稍等片刻后重试。")


def error_page(code: int, said: str | None = None, words: tuple[str, str] | None = None) -> Any:
    """The error page of ``code``; ``said`` (a :func:`app.messages.msg`) replaces its usual text,
    ``words`` its title and text."""
    title, text = words or PAGES[code]
    if said is not None:
        if request.path.startswith("/api/"):
            return jsonify(message=said), code
        text = localized(said)
    if request.path.startswith("/api/"):
        return jsonify(message=title), code
    appbuilder = current_app.appbuilder  # type: ignore[attr-defined]
    if "user" not in g:  # refused before sign-in was looked at (e.g. a CSRF failure): no menu to draw
        return render_template("crm/error_plain.html", code=code, title=title, text=text), code
    return render_template("crm/error.html", code=code, title=title, text=text, appbuilder=appbuilder,
                           base_template=appbuilder.base_template), code


def register_error_pages(app: Flask) -> None:
    def http_error(exc: HTTPException) -> Any:
        if exc.code not in PAGES:
            return exc
        return error_page(int(exc.code))

    def rollback() -> None:
        try:
            current_app.extensions["crm"].db.session.rollback()
        except Exception:  # noqa: BLE001, S110 - the page must still be shown when the database is gone
            pass

    def server_error(_exc: Exception) -> Any:
        rollback()
        return error_page(500)

    def database_error(exc: sa.exc.DBAPIError) -> Any:
        if is_database_busy(exc):  # SQLite's write lock still taken after the busy timeout (app.web.dbtuning)
            rollback()
            return error_page(503, words=BUSY)
        if not is_query_canceled(exc):  # any other database failure: the 500 path, as if not caught here
            raise exc
        rollback()  # a statement past the web statement timeout (app.web.dbtuning)
        return error_page(503)

    @app.before_request
    def readable_query() -> Any:
        """FAB parses the REST API's ``q`` (rison) itself and catches only the parser's own error:
        an unclosed ``((((`` sends prison into endless recursion, a 500. Read it once here, first."""
        q = request.args.get("q") if request.path.startswith("/api/") else None
        if not q:
            return None
        try:
            prison.loads(q)
        except (prison.decoder.ParserException, RecursionError, ValueError, IndexError, TypeError):
            return jsonify(message="Not a valid rison argument: q=(…) could not be read"), 400
        return None

    @app.before_request
    def known_action() -> Any:
        """FAB's bulk-action endpoint (``…/action_post``) looks the posted action up without a check:
        a name the view does not have was a 500. Refused here, before anything is read or done."""
        endpoint = request.endpoint or ""
        if request.method != "POST" or not endpoint.endswith(".action_post"):
            return None
        view = getattr(current_app.view_functions.get(endpoint), "__self__", None)
        name = request.form.get("action", "")
        if view is not None and name in getattr(view, "actions", {}):
            return None
        return error_page(400, msg("没有这个批量操作"))

    def read_not_recorded(_exc: audit.ReadNotRecorded) -> Any:
        return error_page(503, words=READ_BUSY)

    app.register_error_handler(audit.ReadNotRecorded, read_not_recorded)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(500, server_error)
    app.register_error_handler(sa.exc.DBAPIError, database_error)
