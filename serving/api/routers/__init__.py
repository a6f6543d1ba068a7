"""API routers, included by ``serving.api.main.create_app``."""
