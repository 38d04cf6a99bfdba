"""Tests of `gateway.apis`."""
