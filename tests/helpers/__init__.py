"""Helpers shared by the tests: the correctness rule, GPU markers, kernel-test set-up."""
