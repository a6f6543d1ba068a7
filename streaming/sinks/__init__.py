"""Sinks: where normalized trades go. They know nothing about exchanges."""
