"""Builders and drivers shared by the test suites."""
