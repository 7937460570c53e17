"""Celery tasks for the training app. Each task re-fetches by id, guards on status and calls one service."""
