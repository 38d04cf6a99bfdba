"""The HTTP layer: handlers (parse, call the flow, serialise), the admin data routes and the
dashboard's files, feedback. The top floor under `gateway.app`: nothing below imports it."""
