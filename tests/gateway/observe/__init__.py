"""Tests of `gateway.observe`."""
