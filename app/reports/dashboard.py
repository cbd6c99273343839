"""The dashboard: every panel of the ``reports`` sheet the viewer may see, drawn in the browser with
Plotly served from the app's own static files (installed with the ``plotly`` package, never a
CDN), each panel drillable to the rows behind a bar or slice and exportable to ``.xlsx`` with a
native Excel chart. The numbers come from :mod:`.reports`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, g, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, IndexView, expose, has_access
from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, PieChart, RadarChart, Reference
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from app.access.scope import current_hidden
from app.io.excel import neutralise as safe_cell
from app.reports.panels import PanelData, Reporter, report_title
from app.web.i18n import L, current_language, pick

PAGE_SIZE = 50


def _plotly_dir() -> str:
    import plotly

    return str(Path(plotly.__file__).parent / "package_data")


assets = Blueprint("crm_assets", __name__, static_folder=str(Path(__file__).resolve().parent.parent / "static"),
                   static_url_path="/crm-static")
plotly_assets = Blueprint("crm_plotly", __name__, static_folder=_plotly_dir(), static_url_path="/crm-static/plotly")


def _crm() -> Any:
    return current_app.extensions["crm"]


class DashboardView(BaseView):
    """仪表盘: panels by the viewer's roles, row scope applied to every number."""

    route_base = "/dashboard"
    default_view = "index"
    base_permissions = ["can_index"]
    method_permission_name = {"index": "index", "every": "index", "panel": "index", "report": "index", "drill": "index",
                              "export": "index"}

    def _reporter(self) -> Reporter:
        return Reporter(_crm(), g.user)

    @expose("/")
    @has_access
    def index(self) -> Any:
        """The home page: the person's own work, then their panels (app.web.home)."""
        from app.web.home import home_context

        return self.render_template("crm/home.html", title=pick("首页", "Home"), **home_context())

    @expose("/all/")
    @has_access
    def every(self) -> Any:
        """Every panel the person may see on one page, drawn at once (the home page groups them)."""
        from app.reports.panels import compute_panels

        app = current_app._get_current_object()  # type: ignore[attr-defined]
        panels = [p.as_dict() for p in compute_panels(app, g.user, self._reporter().sources(), current_language(),
                                                       app.config.get("CRM_DASHBOARD_WORKERS", 4))]
        return self.render_template("crm/dashboard.html", title=pick("全部统计", "All reports"), panels=panels)

    @expose("/panel/<name>")
    @has_access
    def panel(self, name: str) -> Any:
        reporter = self._reporter()
        source = reporter.source(name)
        if source is None:
            abort(404)
        return reporter.compute(source).as_dict()

    @expose("/report/<name>")
    @has_access
    def report(self, name: str) -> Any:
        """One panel as a page: the chart large, every number in a table, export and drill-down."""
        reporter = self._reporter()
        source = reporter.source(name)
        if source is None:
            abort(404)
        data = reporter.compute(source).as_dict()
        return self.render_template("crm/dashboard.html", title=data["title"], panels=[data], single=True)

    @expose("/drill/<name>")
    @has_access
    def drill(self, name: str) -> Any:
        """The records behind one bar/slice/point: the panel's scope, condition and category."""
        reporter = self._reporter()
        report = reporter.report(name)
        if report is None:
            abort(404)
        crm = _crm()
        entity = crm.spec.entity(report.entity)
        data = reporter.panel(report)
        if data.denied:
            abort(403)
        key = request.args.get("key", "")
        try:
            clause = reporter.drill_clause(entity, report, key)
        except ValueError:
            abort(400)
        model = reporter.models[entity.name]
        table = reporter.tables[entity.name]
        q = reporter.session.query(model).filter(*reporter.where(entity, report), clause)
        total = q.count()
        page = max(request.args.get("page", 0, type=int), 0)
        rows = q.order_by(table.c.id.desc()).offset(page * PAGE_SIZE).limit(PAGE_SIZE).all()
        view = self._entity_view(entity.name)
        hidden = current_hidden(entity.name)
        columns = [c for c in (view.list_columns if view else []) if c not in hidden]
        formatters = view.formatters_columns if view else {}
        cells = [[(formatters[c](getattr(obj, c)) if c in formatters else _text(getattr(obj, c))) for c in columns] for obj in rows]
        links = [url_for(f"{type(view).__name__}.show", pk=obj.id) if view else "" for obj in rows]
        label = next((c.label for c in data.categories if c.key == key), key)
        return self.render_template(
            "crm/drill.html", title=report_title(crm.spec, report), category=label, total=total, page=page, page_size=PAGE_SIZE,
            headers=[view.label_columns.get(c, c) if view else c for c in columns], rows=list(zip(links, cells, strict=True)),
            name=name, key=key, back=url_for("DashboardView.index"))

    @expose("/export/<name>")
    @has_access
    def export(self, name: str) -> Any:
        reporter = self._reporter()
        source = reporter.source(name)
        if source is None:
            abort(404)
        data = reporter.compute(source)
        if data.denied:
            abort(403)
        buffer = io.BytesIO()
        panel_workbook(data).save(buffer)
        buffer.seek(0)
        return send_file(buffer, as_attachment=True, download_name=f"{name}.xlsx",
                         mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    def _entity_view(self, entity: str) -> Any:
        crm = _crm()
        view_cls = next((v for n, v, *_rest in crm.generated.views.REGISTRY if n == entity), None)
        return next((b for b in self.appbuilder.baseviews if view_cls is not None and isinstance(b, view_cls)), None)


def number(value: Any) -> str:
    """Numbers the Chinese way: thousands separated, two decimals only when there are any."""
    if value is None or value == "":
        return ""
    v = float(value)
    return f"{int(v):,}" if v.is_integer() else f"{v:,.2f}"


def money(value: Any) -> str:
    """Money the way the office reads it: 8,500 元, 80 万, 1.2 亿 (English: ¥1,234,567)."""
    if value is None or value == "":
        return ""
    v = float(value)
    if current_language() == "en":
        return f"¥{v:,.0f}" if abs(v) >= 100 else f"¥{v:,.2f}"
    for unit, word in ((1e8, "亿"), (1e4, "万")):
        if abs(v) >= unit:
            return f"{_trim(f'{v / unit:,.2f}')} {word}"
    return f"{_trim(f'{v:,.2f}')} 元"


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def _text(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "hour") else value.strftime("%Y-%m-%d")
    return str(value)


def panel_workbook(data: PanelData) -> Workbook:
    """The panel as a worksheet (category + one column per measure) with a native Excel chart."""
    wb = Workbook()
    ws = wb.active
    ws.title = "report"
    ws.append([safe_cell(data.title)])
    ws["A1"].font = Font(bold=True, size=13)
    if data.note:
        ws.append([safe_cell(data.note)])
    header_row = ws.max_row + 1
    ws.append([pick("分类", "Category"), *(safe_cell(m) for m in data.measures)])
    for cell in ws[header_row]:
        cell.font = Font(bold=True)
    for row in data.rows():
        ws.append([safe_cell(row[0]), *row[1:]])
    last = ws.max_row
    ws.column_dimensions["A"].width = max([12, *(len(str(r[0])) * 2 + 2 for r in data.rows())][:40])
    for i in range(len(data.measures)):
        ws.column_dimensions[get_column_letter(i + 2)].width = 16
    if data.chart != "table" and last > header_row:
        chart = {"bar": BarChart, "line": LineChart, "pie": PieChart, "radar": RadarChart}[data.chart]()
        chart.title = data.title
        values = Reference(ws, min_col=2, max_col=1 + len(data.measures), min_row=header_row, max_row=last)
        chart.add_data(values, titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=header_row + 1, max_row=last))
        chart.width, chart.height = 18, 9
        ws.add_chart(chart, f"{get_column_letter(len(data.measures) + 3)}{header_row}")
    return wb


def register_dashboard(app: Any, appbuilder: Any) -> None:
    """The dashboard menu entry (first), its assets, and the landing page for signed-in users."""
    app.register_blueprint(assets)
    app.register_blueprint(plotly_assets)
    app.jinja_env.filters["crm_number"] = number
    app.jinja_env.filters["crm_money"] = money
    app.jinja_env.globals["crm_language"] = current_language
    appbuilder.add_view(DashboardView, "dashboard", label=L("首页", "Home"), icon="fa-home")


class CrmIndexView(IndexView):
    """The home page: signed-in people land on their dashboard, others on the login page."""

    @expose("/")
    def index(self) -> Any:
        user = getattr(g, "user", None)
        if getattr(user, "is_authenticated", False):
            return redirect(url_for("DashboardView.index"))
        return redirect(url_for(f"{self.appbuilder.sm.auth_view.__class__.__name__}.login"))
