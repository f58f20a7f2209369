"""Automatic differentiation transforms on IR programs."""
