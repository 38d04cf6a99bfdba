"""Tests of `routers`: the router kinds behind the classifier seam."""
