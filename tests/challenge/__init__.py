"""Tests of the challenge platform (iqarena.challenge); a package, so its conftest does not shadow tests/conftest."""
