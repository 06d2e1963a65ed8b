"""End-to-end tests across patterns, in one process on real local servers."""
