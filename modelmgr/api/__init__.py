"""The JSON API: one NinjaAPI assembling one Router per resource (see api/routes.py)."""
