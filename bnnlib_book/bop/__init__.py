"""The bop paper's chapter code."""
