"""Tests of `gateway.ledger`."""
