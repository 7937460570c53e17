"""Celery tasks for the registry app. Each task re-fetches by id, guards on status and calls one service."""
