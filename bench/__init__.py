"""`make bench`: the hourly-run cost of the CDC merge job against other ways of doing it."""
