"""The rows of the /models table, built in Python.

Through the template language the table's 20 rows were two thirds of the page's
rendering: some twenty variable lookups, a ``{% url %}`` and four filters per row. As
for the versions table (``modelmgr/views/version_rows.py``), every row is built here,
every value escaped with ``html.escape``, the function Django's own ``escape`` calls.
"""

from __future__ import annotations

from html import escape

from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.timezone import template_localtime

from modelmgr.registry.selectors import model_tags
from modelmgr.templatetags.human import ago
from modelmgr.views.common import owner_query

NO_TAGS = '<span class="muted">–</span>'
NONE_AVAILABLE = '<span class="muted">none available</span>'


def _name_cell(model, viewer) -> str:
    url = reverse("model-detail", args=[model.name]) + owner_query(model, viewer)
    html = f'<td><a href="{escape(url)}"><strong>{escape(model.name)}</strong></a>'
    if model.description:
        description = escape(Truncator(model.description).chars(80))
        html += f'\n          <div class="muted small">{description}</div>'
    return html + "</td>"


def _tags_cell(model) -> str:
    badges = "".join(f'<span class="badge">{escape(tag.name)}</span> ' for tag in model_tags(model))
    return f"<td>{badges or NO_TAGS}</td>"


def model_rows(models, *, viewer) -> list[SafeString]:
    """One ``<tr>`` per model of a page of ``model_list`` (owner selected, tags
    prefetched). A model of another owner links with ``?owner=``."""
    rows = []
    for model in models:
        latest = model.latest_version
        updated = template_localtime(model.updated_at)
        rows.append(
            mark_safe(  # noqa: S308 - every value below is escaped
                "<tr>"
                f"{_name_cell(model, viewer)}"
                f'<td><span class="badge">{escape(model.task)}</span></td>'
                f"<td>{escape(model.get_framework_display() or '–')}</td>"
                f"<td>{f'<code>{escape(latest)}</code>' if latest else NONE_AVAILABLE}</td>"
                f'<td class="num">{model.version_count}</td>'
                f"{_tags_cell(model)}"
                f"<td>{escape(model.owner.get_username())}</td>"
                f'<td class="muted small" title="{updated.isoformat()}">{escape(ago(updated))}</td>'
                "</tr>"
            )
        )
    return rows
