"""Tests of `gateway.learning`."""
