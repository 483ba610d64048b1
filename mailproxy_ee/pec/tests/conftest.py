"""Fixtures of the ``ee_pec`` plugin tests."""
