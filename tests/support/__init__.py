"""Helpers shared by the tests: one AMI test server, one FastAGI client, one free_port, one until, builders."""
