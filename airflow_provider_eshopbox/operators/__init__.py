"""Operators of the Eshopbox provider; each lives in its own module."""
