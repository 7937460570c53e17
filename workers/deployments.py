"""Celery tasks for the deployments app. Each task re-fetches by id, guards on status and calls one service."""
