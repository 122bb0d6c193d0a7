"""Navigation built from the kernel's pages and the loaded modules' `nav` entries."""

from __future__ import annotations

from typing import Any

from flask import current_app, request, url_for
from flask_login import current_user
from sqlalchemy import select

from bunbase.db import db
from bunbase.models import Tenant
from bunbase.modules import NavItem
from bunbase.tenancy import unscoped

KERNEL_NAV = [
    NavItem("Overview", "Dashboard", "studio.overview", order=0, icon="dashboard"),
    NavItem("Runtime", "Actions", "studio.runs", order=10, icon="bolt"),
    NavItem("System", "Health", "studio.health", order=90, icon="activity"),
    NavItem("System", "API reference", "studio.api_reference", order=91, icon="code"),
]
SECTION_ORDER = ["Overview", "Runtime", "Platform", "Communication", "System"]


def build_nav() -> list[dict[str, Any]]:
    items = list(KERNEL_NAV)
    for mod in current_app.extensions["bunbase"].registry.modules.values():
        items.extend(mod.nav)
    sections: dict[str, list[NavItem]] = {}
    for item in items:
        if item.endpoint in current_app.view_functions:
            sections.setdefault(item.section, []).append(item)
    ordered = sorted(
        sections,
        key=lambda s: (SECTION_ORDER.index(s) if s in SECTION_ORDER else 50, s),
    )
    current = request.endpoint or ""
    return [
        {
            "title": title,
            "items": [
                {
                    "label": i.label,
                    "url": url_for(i.endpoint),
                    "active": current == i.endpoint or current.startswith(i.endpoint + "_"),
                    "icon": i.icon,
                }
                for i in sorted(sections[title], key=lambda i: i.order)
            ],
        }
        for title in ordered
    ]


def layout_context() -> dict[str, Any]:
    if not request.path.startswith("/studio") or not current_user.is_authenticated:
        return {"nav": [], "studio_tenant": None, "studio_tenants": []}
    from studio.auth import current_tenant

    tenants: list[Tenant] = []
    if current_user.is_platform_operator:
        with unscoped():
            tenants = list(db.session.scalars(select(Tenant).order_by(Tenant.name)))
    return {
        "nav": build_nav(),
        "studio_tenant": current_tenant(current_user),
        "studio_tenants": tenants,
    }
