"""Tests of `gateway.quality`."""
