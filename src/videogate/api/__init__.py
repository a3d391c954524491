"""HTTP surfaces (FastAPI). ``create_app`` builds the ASGI app from the settings."""
