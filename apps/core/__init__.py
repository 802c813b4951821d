"""Shared domain conventions (no models): the one application error type services raise."""
