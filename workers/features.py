"""Celery tasks for the features app. Each task re-fetches by id, guards on status and calls one service."""
