"""Hooks of the Eshopbox provider."""
