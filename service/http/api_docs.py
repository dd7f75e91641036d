"""The API docs page (`/schema`, Swagger UI) served from packaged files, so it works offline.

Litestar's render plugins load Swagger UI from a CDN by default; here its script and style come from the
PyPI package `swagger-ui-py` (Swagger UI 5, which renders OpenAPI 3.1; Apache-2.0, its licence ships beside
the files), served under :data:`ASSETS_PATH` by a static-files router. The package is located, not
imported (importing it would load its own web-framework adapters).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components
from litestar.router import Router
from litestar.static_files import create_static_files_router

ASSETS_PATH = "/static/swagger-ui"
"""Where Swagger UI's files are served."""


def swagger_ui_static_dir() -> Path:
    """The folder of Swagger UI's built files inside the installed `swagger-ui-py` package."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the API docs need the package swagger-ui-py: pip install 'swagger-ui-py>=25'")
    return Path(list(spec.submodule_search_locations)[0]) / "static"


def docs_assets_router() -> Router:
    """Serves the packaged Swagger UI files (script, standalone preset, style) under ASSETS_PATH."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[swagger_ui_static_dir()],
        include_in_schema=False,
        name="swagger-ui-assets",
    )


def openapi_config(
    title: str, version: str, description: str, components: Components | list[Components]
) -> OpenAPIConfig:
    """OpenAPI document settings with Swagger UI at `/schema` (and `/schema/swagger`) from local files."""
    swagger = SwaggerRenderPlugin(
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        path=["/", "/swagger"],
        favicon='<link rel="icon" href="data:,">',
    )
    return OpenAPIConfig(
        title=title,
        version=version,
        description=description,
        use_handler_docstrings=True,
        components=components,
        render_plugins=[swagger],
    )
